#include "source/problems.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "source/consumer_metrics.hpp"

namespace kc::detail {

namespace {

// A problem that lasts is logged again this often, with how long it has
// lasted and how many times it was seen meanwhile.
constexpr auto kRemindEvery = std::chrono::minutes(1);

std::string label(ProblemKind kind, const std::string& subject) {
  return subject.empty() ? std::string(to_string(kind)) : std::string(to_string(kind)) + " " + subject;
}

long long whole_seconds(std::chrono::steady_clock::duration d) {
  return static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(d).count());
}

}  // namespace

const char* to_string(ProblemKind kind) noexcept {
  switch (kind) {
    case ProblemKind::authentication: return "authentication";
    case ProblemKind::tls: return "tls";
    case ProblemKind::authorization: return "authorization";
    case ProblemKind::brokers_down: return "brokers_down";
    case ProblemKind::topic_missing: return "topic_missing";
    case ProblemKind::dead_letter_topic_missing: return "dead_letter_topic_missing";
    case ProblemKind::partition_halted: return "partition_halted";
    case ProblemKind::sink_stalled: return "sink_stalled";
    case ProblemKind::commits_failing: return "commits_failing";
  }
  return "?";
}

bool fatal_after_a_while(ProblemKind kind) noexcept {
  return kind == ProblemKind::authentication || kind == ProblemKind::tls || kind == ProblemKind::authorization;
}

bool Problems::raise(ProblemKind kind, const std::string& subject, std::string text, Clock::time_point now) {
  auto [it, inserted] = active_.try_emplace({kind, subject});
  Entry& e = it->second;
  if (!inserted) {
    ++e.repeats;
    if (e.text != text) {
      e.text = std::move(text);
      publish();
    }
    return false;
  }
  e.text = std::move(text);
  e.since = now;
  e.logged = now;
  spdlog::error("kc: {}: {}", label(kind, subject), e.text);
  publish();
  return true;
}

void Problems::clear(ProblemKind kind, const std::string& subject) {
  const auto it = active_.find({kind, subject});
  if (it == active_.end()) {
    return;
  }
  spdlog::info("kc: {}: resolved after {} s", label(kind, subject), whole_seconds(Clock::now() - it->second.since));
  active_.erase(it);
  publish();
}

void Problems::clear_all(ProblemKind kind) {
  bool changed = false;
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->first.first == kind) {
      spdlog::info("kc: {}: resolved after {} s", label(kind, it->first.second),
                   whole_seconds(Clock::now() - it->second.since));
      it = active_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  if (changed) {
    publish();
  }
}

bool Problems::any(ProblemKind kind) const noexcept {
  const auto it = active_.lower_bound({kind, std::string()});
  return it != active_.end() && it->first.first == kind;
}

std::optional<std::string> Problems::overdue(Clock::time_point now, std::chrono::milliseconds after) const {
  if (after.count() <= 0) {
    return std::nullopt;
  }
  const std::pair<const std::pair<ProblemKind, std::string>, Entry>* oldest = nullptr;
  for (const auto& entry : active_) {
    if (fatal_after_a_while(entry.first.first) && now - entry.second.since >= after &&
        (oldest == nullptr || entry.second.since < oldest->second.since)) {
      oldest = &entry;
    }
  }
  if (oldest == nullptr) {
    return std::nullopt;
  }
  return fmt::format("{} for {} s (health.fatal_after_ms {}): {}", label(oldest->first.first, oldest->first.second),
                     whole_seconds(now - oldest->second.since), after.count(), oldest->second.text);
}

void Problems::remind(Clock::time_point now) {
  for (auto& [key, e] : active_) {
    if (now - e.logged >= kRemindEvery) {
      spdlog::error("kc: {}: still, for {} s ({} times since the last line): {}", label(key.first, key.second),
                    whole_seconds(now - e.since), e.repeats, e.text);
      e.logged = now;
      e.repeats = 0;
    }
  }
}

void Problems::publish() {
  std::vector<ConsumerMetrics::Problem> list;
  list.reserve(active_.size());
  for (const auto& [key, e] : active_) {
    list.push_back({to_string(key.first), key.second, e.text});
  }
  metrics_.problems(std::move(list));
}

}  // namespace kc::detail
