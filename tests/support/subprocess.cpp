#include "support/subprocess.hpp"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "support/common.hpp"

namespace kc::test {

std::string ExitStatus::to_string() const {
  if (signaled) {
    return "signal " + std::to_string(code) + " (" + strsignal(code) + ")";
  }
  return "exit " + std::to_string(code);
}

Subprocess::Subprocess(std::string path, std::vector<std::string> args, std::filesystem::path stdout_file,
                       std::filesystem::path stderr_file)
    : out_(std::move(stdout_file)), err_(std::move(stderr_file)) {
  command_ = path;
  std::vector<char*> argv;
  argv.push_back(path.data());
  for (auto& a : args) {
    command_ += ' ';
    command_ += a;
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);

  // Everything the child needs is prepared here: between fork and exec only
  // async-signal-safe calls are allowed (the test process has threads).
  const int out_fd = ::open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = ::open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int exec_pipe[2] = {-1, -1};
  if (out_fd < 0 || err_fd < 0 || null_fd < 0 || ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    for (int fd : {out_fd, err_fd, null_fd, exec_pipe[0], exec_pipe[1]}) {
      if (fd >= 0) {
        ::close(fd);
      }
    }
    throw Failure("Subprocess " + command_ + ": cannot open its files: " + std::strerror(e));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) {
      ::_exit(127);  // the parent died before prctl
    }
    ::dup2(null_fd, STDIN_FILENO);
    ::dup2(out_fd, STDOUT_FILENO);
    ::dup2(err_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    const int e = errno;
    [[maybe_unused]] auto n = ::write(exec_pipe[1], &e, sizeof e);
    ::_exit(127);
  }
  const int fork_errno = errno;
  ::close(out_fd);
  ::close(err_fd);
  ::close(null_fd);
  ::close(exec_pipe[1]);
  if (pid < 0) {
    ::close(exec_pipe[0]);
    throw Failure("Subprocess " + command_ + ": fork failed: " + std::strerror(fork_errno));
  }
  pid_ = pid;
  // The pipe closes on a successful exec (O_CLOEXEC) and carries errno otherwise.
  int exec_errno = 0;
  ssize_t n = 0;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof exec_errno)) {
    reap(true);
    throw Failure("Subprocess: cannot execute " + path + ": " + std::strerror(exec_errno));
  }
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
}

bool Subprocess::reap(bool block) {
  if (status_) {
    return true;
  }
  int st = 0;
  pid_t r = 0;
  do {
    r = ::waitpid(pid_, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r != pid_) {
    return false;
  }
  if (WIFSIGNALED(st)) {
    status_ = ExitStatus{true, WTERMSIG(st)};
  } else {
    status_ = ExitStatus{false, WEXITSTATUS(st)};
  }
  return true;
}

bool Subprocess::running() {
  return !reap(false);
}

void Subprocess::signal(int sig) {
  if (pid_ > 0 && !reap(false)) {
    ::kill(pid_, sig);
  }
}

std::optional<ExitStatus> Subprocess::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reap(false)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

std::string Subprocess::stdout_text() const {
  return read_file(out_);
}
std::string Subprocess::stderr_text() const {
  return read_file(err_);
}

}  // namespace kc::test
