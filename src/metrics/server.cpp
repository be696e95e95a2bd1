// The metrics and health endpoint on cpp-httplib.
//
// Threads: one accept thread plus a pool of two workers; scrapes are rare
// (every few seconds) and short, so more would only cost memory.
// Each connection serves one request (keep-alive off): an idle keep-alive
// connection would hold one of the two workers for its whole timeout, and
// the destructor would wait for it.
#include <httplib.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <thread>
#include <utility>

#include "kc/error.hpp"
#include "kc/metrics.hpp"

namespace kc::metrics {

namespace {

constexpr std::size_t kWorkers = 2;
constexpr time_t kTimeoutSeconds = 2;

void answer(httplib::Response& res, const std::function<Health()>& check) {
  Health h;
  try {
    if (check) {
      h = check();
    }
  } catch (const std::exception& e) {
    h = Health{false, std::string("health check threw: ") + e.what()};
  } catch (...) {
    h = Health{false, "health check threw"};
  }
  res.status = h.ok ? 200 : 503;
  std::string body = h.ok ? std::string("ok") : (h.reason.empty() ? std::string("not ok") : h.reason);
  if (body.back() != '\n') {
    body += '\n';
  }
  res.set_content(std::move(body), "text/plain; charset=utf-8");
}

}  // namespace

struct Server::Impl {
  httplib::Server http;
  std::thread thread;
  std::atomic<bool> done{false};
  std::uint16_t port = 0;
};

Server::Server(Options options, const Registry& registry, std::function<Health()> liveness,
               std::function<Health()> readiness)
    : impl_(std::make_unique<Impl>()) {
  auto& http = impl_->http;
  http.new_task_queue = [] { return new httplib::ThreadPool(kWorkers); };
  // cpp-httplib sets SO_REUSEPORT by default, which lets a second process
  // listen on the same port and silently take half the scrapes. SO_REUSEADDR
  // alone still allows a quick restart over TIME_WAIT connections.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  http.set_keep_alive_max_count(1);
  http.set_keep_alive_timeout(kTimeoutSeconds);
  http.set_read_timeout(kTimeoutSeconds);
  http.set_write_timeout(kTimeoutSeconds);

  http.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/healthz",
           [check = std::move(liveness)](const httplib::Request&, httplib::Response& res) { answer(res, check); });
  http.Get("/readyz",
           [check = std::move(readiness)](const httplib::Request&, httplib::Response& res) { answer(res, check); });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404 && res.body.empty()) {
      res.set_content("not found\n", "text/plain; charset=utf-8");
    }
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    res.status = 500;
    res.set_content(what + "\n", "text/plain; charset=utf-8");
  });

  errno = 0;
  int port = options.port;
  if (options.port == 0) {
    port = http.bind_to_any_port(options.bind);
  } else if (!http.bind_to_port(options.bind, options.port)) {
    port = -1;
  }
  if (port < 0) {
    const int err = errno;
    throw Error(errc::config_invalid_value,
                fmt::format("metrics.port: cannot listen on {}:{}{}{}", options.bind, options.port,
                            err != 0 ? ": " : "", err != 0 ? std::strerror(err) : ""));
  }
  impl_->port = static_cast<std::uint16_t>(port);
  impl_->thread = std::thread([impl = impl_.get()] {
    impl->http.listen_after_bind();
    impl->done = true;
  });
  // stop() is a no-op until the accept loop runs: wait for it, so that a
  // destructor right after the constructor cannot miss it and hang.
  while (!http.is_running() && !impl_->done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Server::~Server() {
  impl_->http.stop();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
}

std::uint16_t Server::port() const noexcept {
  return impl_->port;
}

}  // namespace kc::metrics
