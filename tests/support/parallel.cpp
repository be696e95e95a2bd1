#include "support/parallel.hpp"

#include <librdkafka/rdkafka.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "support/rdkafka_handles.hpp"

namespace kc::test {

// ---------------------------------------------------------------- committed offsets

struct CommittedReader::Impl {
  rdk::RkPtr rk;
};

CommittedReader::CommittedReader(const std::string& bootstrap, const std::string& group)
    : impl_(std::make_unique<Impl>()) {
  // A consumer handle that never subscribes: rd_kafka_committed() only asks
  // the group coordinator (OffsetFetch); it does not join the group.
  impl_->rk =
      rdk::make_client(RD_KAFKA_CONSUMER, bootstrap,
                       {{"group.id", group}, {"enable.auto.commit", "false"}, {"client.id", "kc-test-committed"}});
}

CommittedReader::~CommittedReader() = default;

std::vector<Committed> CommittedReader::read(const std::string& topic, int partitions,
                                             std::chrono::milliseconds timeout) {
  rdk::ListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  }
  const auto err = rd_kafka_committed(impl_->rk.get(), list.get(), static_cast<int>(timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("rd_kafka_committed(" + topic + "): " + rd_kafka_err2name(err));
  }
  std::vector<Committed> out(static_cast<std::size_t>(partitions));
  for (int i = 0; i < list->cnt; ++i) {
    const auto& el = list->elems[i];
    if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw Failure("committed offset of " + topic + "[" + std::to_string(el.partition) +
                    "]: " + rd_kafka_err2name(el.err));
    }
    if (el.partition < 0 || el.partition >= partitions) {
      continue;
    }
    auto& c = out[static_cast<std::size_t>(el.partition)];
    c.offset = el.offset >= 0 ? el.offset : -1;
    if (el.metadata != nullptr && el.metadata_size > 0) {
      c.metadata.assign(static_cast<const char*>(el.metadata), el.metadata_size);
    }
  }
  return out;
}

void commit_with_metadata(const std::string& bootstrap, const std::string& group, const std::string& topic,
                          int partition, std::int64_t offset, const std::string& metadata) {
  auto rk = rdk::make_client(RD_KAFKA_CONSUMER, bootstrap,
                             {{"group.id", group}, {"enable.auto.commit", "false"}, {"client.id", "kc-test-commit"}});
  rdk::ListPtr list(rd_kafka_topic_partition_list_new(1));
  auto* el = rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition);
  el->offset = offset;
  // The list frees its metadata with free().
  el->metadata = std::malloc(metadata.size());
  std::memcpy(el->metadata, metadata.data(), metadata.size());
  el->metadata_size = metadata.size();
  if (const auto err = rd_kafka_commit(rk.get(), list.get(), 0); err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw Failure("commit of " + topic + "[" + std::to_string(partition) + "] for group " + group + ": " +
                  rd_kafka_err2name(err));
  }
  rd_kafka_consumer_close(rk.get());
}

std::vector<Committed> committed_with_metadata(const std::string& bootstrap, const std::string& group,
                                               const std::string& topic, int partitions,
                                               std::chrono::milliseconds timeout) {
  CommittedReader reader(bootstrap, group);
  return reader.read(topic, partitions, timeout);
}

// ---------------------------------------------------------------- timer

Timer::Timer(std::size_t threads) {
  threads_.reserve(threads);
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this] { loop(); });
  }
}

Timer::~Timer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    t.join();
  }
  // What was not run is destroyed here, on this thread, after the threads.
}

void Timer::at(Clock::time_point due, std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    queue_.push(Item{due, seq_++, std::move(fn)});
  }
  cv_.notify_one();
}

std::size_t Timer::pending() const {
  std::lock_guard lock(mu_);
  return queue_.size() + running_;
}

std::uint64_t Timer::errors() const {
  std::lock_guard lock(mu_);
  return errors_;
}

bool Timer::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  return idle_cv_.wait_for(lock, timeout, [&] { return queue_.empty() && running_ == 0; });
}

void Timer::loop() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (stop_) {
      return;
    }
    if (queue_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto due = queue_.top().due;
    if (due > Clock::now()) {
      cv_.wait_until(lock, due);
      continue;
    }
    // priority_queue::top() is const: move out through a const_cast of the
    // function only (the ordering fields stay as they are until pop()).
    auto fn = std::move(const_cast<Item&>(queue_.top()).fn);
    queue_.pop();
    ++running_;
    lock.unlock();
    bool threw = false;
    try {
      fn();
    } catch (...) {
      threw = true;
    }
    fn = nullptr;  // destroy captured state (a Completion) outside the lock
    lock.lock();
    --running_;
    errors_ += threw ? 1 : 0;
    if (queue_.empty() && running_ == 0) {
      idle_cv_.notify_all();
    }
  }
}

// ---------------------------------------------------------------- background run

BackgroundRun::BackgroundRun(kc::Consumer& consumer)
    : consumer_(consumer), thread_([this] {
        try {
          result_ = consumer_.run();
        } catch (...) {
          error_ = std::current_exception();
        }
        finished_ = true;
      }) {}

BackgroundRun::~BackgroundRun() {
  if (thread_.joinable()) {
    consumer_.stop();
    thread_.join();
  }
}

kc::RunResult BackgroundRun::join() {
  thread_.join();
  if (error_) {
    std::rethrow_exception(error_);
  }
  return result_;
}

kc::RunResult BackgroundRun::join(std::chrono::milliseconds timeout) {
  if (!wait_until([&] { return finished_.load(); }, timeout, std::chrono::milliseconds(10))) {
    consumer_.stop_now();
    if (!wait_until([&] { return finished_.load(); }, std::chrono::seconds(10), std::chrono::milliseconds(10))) {
      // run() hangs even after stop_now(): joining would hang the test too,
      // and the thread uses the consumer, so it cannot be left behind.
      std::fprintf(stderr,
                   "FATAL: kc::Consumer::run() did not return within %lld ms, nor 10 s after stop_now(): "
                   "aborting the test process\n",
                   static_cast<long long>(timeout.count()));
      std::fflush(stderr);
      std::abort();
    }
    thread_.join();
    throw Failure("kc::Consumer::run() did not return within " + std::to_string(timeout.count()) +
                  " ms (ended by stop_now())");
  }
  return join();
}

}  // namespace kc::test
