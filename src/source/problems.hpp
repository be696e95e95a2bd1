// What keeps a consumer from doing its job, as its poll loop sees it: wrong
// credentials, an untrusted certificate, a topic it may not read, a missing
// topic, a halted partition, a stalled sink, failing commits. Private to the
// library; owned and called by the poll thread.
//
// Each problem is visible at once and stays visible while it lasts: /readyz
// answers 503 with one line per problem, the gauge kc_problem{kind,subject}
// is 1, and the log has one line when it begins (then one reminder a minute
// with how long it has lasted, never a flood). The kinds that do not heal by
// themselves (authentication, TLS, authorization) end run() with
// StopReason::fatal naming the cause once they have lasted
// health.fatal_after_ms.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

namespace kc::detail {

class ConsumerMetrics;

enum class ProblemKind : std::uint8_t {
  authentication,             ///< SASL authentication failed (fatal after a while)
  tls,                        ///< the TLS handshake failed (fatal after a while)
  authorization,              ///< a topic or the group may not be used (fatal after a while)
  brokers_down,               ///< no broker answers
  topic_missing,              ///< a subscribed topic does not exist
  dead_letter_topic_missing,  ///< a dead-letter or retry topic does not exist
  partition_halted,           ///< a failed record stopped its partition (no dead-letter topic)
  sink_stalled,               ///< the exactly-once sink fails: processing waits
  commits_failing,            ///< offset commits fail one after another
};

/// The kind's name as shown in kc_problem{kind=...} and on /readyz.
const char* to_string(ProblemKind kind) noexcept;

/// Whether a problem of `kind` ends run() once it has lasted health.fatal_after_ms.
bool fatal_after_a_while(ProblemKind kind) noexcept;

/// The problems of one consumer. Poll thread only; what the endpoint's
/// threads read is published into ConsumerMetrics (under its lock).
class Problems {
 public:
  using Clock = std::chrono::steady_clock;

  /// `metrics` must outlive this object.
  explicit Problems(ConsumerMetrics& metrics) : metrics_(metrics) {}

  /// Raises (or refreshes the text of) the problem `kind` about `subject`
  /// (a topic, "topic[partition]", a group, or "" for the client as a
  /// whole). A new problem is logged at once (error level) and published;
  /// an existing one only counts the repeat. Returns true when it is new.
  bool raise(ProblemKind kind, const std::string& subject, std::string text, Clock::time_point now);

  /// Ends one problem (logged at info level when it was active).
  void clear(ProblemKind kind, const std::string& subject);
  /// Ends every problem of `kind`.
  void clear_all(ProblemKind kind);

  bool any(ProblemKind kind) const noexcept;
  bool empty() const noexcept { return active_.empty(); }

  /// The oldest problem of a fatal-after-a-while kind that has lasted
  /// `after` by `now`, as the text run() ends with ("authentication failed
  /// for 60 s: ..."); nullopt when there is none or `after` is 0.
  std::optional<std::string> overdue(Clock::time_point now, std::chrono::milliseconds after) const;

  /// Logs a reminder of each problem that still lasts, at most once a
  /// minute per problem. Cheap when there is none.
  void remind(Clock::time_point now);

 private:
  struct Entry {
    std::string text;
    Clock::time_point since;
    Clock::time_point logged;
    std::uint64_t repeats = 0;  // raise() calls since it was logged
  };
  void publish();

  ConsumerMetrics& metrics_;
  std::map<std::pair<ProblemKind, std::string>, Entry> active_;
};

}  // namespace kc::detail
