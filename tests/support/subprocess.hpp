// A child process for tests: the kc tool (or anything else) run with
// arguments, its stdout and stderr going to files the test can read while it
// runs.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace kc::test {

/// How a child ended.
struct ExitStatus {
  bool signaled = false;  ///< killed by a signal (then `code` is the signal number)
  int code = 0;           ///< exit code, or the signal number

  bool ok() const noexcept { return !signaled && code == 0; }
  bool killed_by(int sig) const noexcept { return signaled && code == sig; }
  /// "exit 0", "exit 2", "signal 9 (Killed)".
  std::string to_string() const;
};

/// Runs `path` with `args` (argv[1..]) in a child process (fork + execv),
/// stdin from /dev/null, stdout and stderr truncated into the given files.
/// The child is killed with SIGKILL if the test process dies (PR_SET_PDEATHSIG;
/// so create a Subprocess from a thread that outlives it, e.g. the test's own).
///
/// The destructor kills a child that still runs (SIGKILL) and reaps it; it
/// never throws. Not thread-safe: use one Subprocess from one thread.
class Subprocess {
 public:
  /// Starts the child. Throws kc::test::Failure when it cannot (exec failed:
  /// missing binary, not executable, ...).
  Subprocess(std::string path, std::vector<std::string> args, std::filesystem::path stdout_file,
             std::filesystem::path stderr_file);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const noexcept { return pid_; }
  /// True while the child has not ended (reaps it when it has).
  bool running();
  /// Sends `sig` to the child (no-op once it has been reaped).
  void signal(int sig);
  /// Waits up to `timeout` for the child to end; nullopt if it still runs.
  std::optional<ExitStatus> wait(std::chrono::milliseconds timeout);
  /// The exit status once the child has been reaped.
  const std::optional<ExitStatus>& status() const noexcept { return status_; }

  std::string stdout_text() const;
  std::string stderr_text() const;
  const std::filesystem::path& stdout_path() const noexcept { return out_; }
  const std::filesystem::path& stderr_path() const noexcept { return err_; }
  /// The command line, for messages.
  const std::string& command() const noexcept { return command_; }

 private:
  bool reap(bool block);

  pid_t pid_ = -1;
  std::optional<ExitStatus> status_;
  std::filesystem::path out_;
  std::filesystem::path err_;
  std::string command_;
};

}  // namespace kc::test
