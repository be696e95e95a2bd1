#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fmt/format.h>
#include <string>

#include "kc/decode.hpp"
#include "kc/error.hpp"
#include "kc/sink.hpp"
#include "text/text.hpp"

namespace kc {
namespace {

void append_base64(std::string& out, Bytes b) {
  detail::append_base64(out, {reinterpret_cast<const char*>(b.data()), b.size()});
}

void append_string(std::string& out, std::string_view s) {
  out += '"';
  detail::append_json_escaped(out, s);
  out += '"';
}

// A field as text when the format allows and the bytes are UTF-8, else base64
// with an "<name>_encoding":"base64" marker so a reader can tell.
void append_bytes_field(std::string& out, std::string_view name, const std::optional<Bytes>& b, bool textual) {
  out += '"';
  out += name;
  out += "\":";
  if (!b) {
    out += "null";
    return;
  }
  if (textual && is_valid_utf8(*b)) {
    append_string(out, kc::as_text(*b));
    return;
  }
  out += '"';
  append_base64(out, *b);
  out += '"';
  if (textual) {
    out += ",\"";
    out += name;
    out += "_encoding\":\"base64\"";
  }
}

class JsonLinesSink final : public Sink {
 public:
  JsonLinesSink(int fd, bool owns, std::string name, KeyFormat key, ValueFormat value)
      : fd_(fd), owns_(owns), name_(std::move(name)), key_(key), value_(value) {
    buf_.reserve(kFlushAt + 4096);
  }
  ~JsonLinesSink() override {
    try {
      flush();
    } catch (...) {
    }
    if (owns_) {
      ::close(fd_);
    }
  }

  void write(const Message& m, const DecodedValue& v) override {
    render(m, v, buf_);
    if (buf_.size() >= kFlushAt) {
      flush();
    }
  }

  void write_rendered(std::string_view rendered) override {
    buf_ += rendered;
    if (buf_.size() >= kFlushAt) {
      flush();
    }
  }

  void render(const Message& m, const DecodedValue& v, std::string& out) const override {
    const auto ts = m.timestamp();
    fmt::format_to(std::back_inserter(out), R"({{"topic":)");
    append_string(out, m.topic());
    fmt::format_to(std::back_inserter(out), R"(,"partition":{},"offset":{},"timestamp":{},)",
                   to_int(m.partition()), to_int(m.offset()), ts.ms);
    if (key_ == KeyFormat::json && !v.key_json.empty()) {
      out += R"("key":)";
      out += v.key_json;
    } else {
      append_bytes_field(out, "key", m.key(), key_ != KeyFormat::raw);
    }
    out += R"(,"headers":[)";
    const auto hs = m.headers();
    for (std::size_t i = 0; i < hs.size(); ++i) {
      const auto h = hs.at(i);
      out += i == 0 ? "[" : ",[";
      append_string(out, h.name);
      out += ',';
      if (!h.value) {
        out += "null";
      } else if (is_valid_utf8(*h.value)) {
        append_string(out, as_text(*h.value));
      } else {
        out += R"({"base64":")";
        append_base64(out, *h.value);
        out += R"("})";
      }
      out += ']';
    }
    out += "],";
    if (value_ == ValueFormat::json && v.error.empty() && m.value()) {
      out += R"("value":)";
      out += v.json;
    } else {
      append_bytes_field(out, "value", m.value(), value_ == ValueFormat::string);
      if (!v.error.empty()) {
        out += R"(,"error":)";
        append_string(out, v.error);
      }
    }
    out += "}\n";
  }

  void flush() override {
    // The buffer holds whole lines only, so a kill between two write(2)
    // calls never leaves half a record in the file.
    std::size_t done = 0;
    while (done < buf_.size()) {
      const auto n = ::write(fd_, buf_.data() + done, buf_.size() - done);
      if (n < 0) {
        if (errno == EINTR) {
          continue;
        }
        throw Error(errc::io, "sink " + name_ + ": write failed: " + std::strerror(errno), true);
      }
      done += static_cast<std::size_t>(n);
    }
    buf_.clear();
  }

 private:
  static constexpr std::size_t kFlushAt = 1u << 20;

  int fd_;
  bool owns_;
  std::string name_;
  KeyFormat key_;
  ValueFormat value_;
  std::string buf_;
};

// A kill -9 can cut a large write(2) short at a page boundary (the kernel
// checks for fatal signals between pages), leaving half a line at the end of
// the file. That record was never committed (the sink flushes before the
// commit is sent), so the next run reads it again: drop the fragment.
void trim_partial_last_line(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size == 0) {
    return;
  }
  char buf[65536];
  off_t end = st.st_size;
  while (end > 0) {
    const off_t start = end > static_cast<off_t>(sizeof buf) ? end - static_cast<off_t>(sizeof buf) : 0;
    const auto n = ::pread(fd, buf, static_cast<std::size_t>(end - start), start);
    if (n <= 0) {
      throw Error(errc::io, "sink jsonl:" + path + ": cannot read: " + std::strerror(errno));
    }
    for (auto i = n; i > 0; --i) {
      if (buf[i - 1] == '\n') {
        end = start + i;
        if (end != st.st_size) {
          spdlog::warn("kc: sink {}: dropped a partial last line of {} bytes (an interrupted run; that record "
                       "was not committed and is read again)",
                       path, st.st_size - end);
          if (::ftruncate(fd, end) != 0) {
            throw Error(errc::io, "sink jsonl:" + path + ": cannot truncate: " + std::strerror(errno));
          }
        }
        return;
      }
    }
    end = start;
  }
  spdlog::warn("kc: sink {}: dropped a partial line of {} bytes (an interrupted run)", path, st.st_size);
  if (::ftruncate(fd, 0) != 0) {
    throw Error(errc::io, "sink jsonl:" + path + ": cannot truncate: " + std::strerror(errno));
  }
}

class NullSink final : public Sink {
 public:
  void write(const Message&, const DecodedValue&) override {}
  void flush() override {}
  void render(const Message&, const DecodedValue&, std::string&) const override {}
  void write_rendered(std::string_view) override {}
};

}  // namespace

std::unique_ptr<Sink> make_sink(std::string_view spec, KeyFormat key, ValueFormat value) {
  if (spec == "null") {
    return std::make_unique<NullSink>();
  }
  if (spec == "stdout") {
    return std::make_unique<JsonLinesSink>(STDOUT_FILENO, false, "stdout", key, value);
  }
  if (spec.starts_with("jsonl:") && spec.size() > 6) {
    const std::string path(spec.substr(6));
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
      throw Error(errc::io, "sink " + std::string(spec) + ": cannot open: " + std::strerror(errno));
    }
    try {
      trim_partial_last_line(fd, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    return std::make_unique<JsonLinesSink>(fd, true, path, key, value);
  }
  throw Error(errc::config_invalid_value,
              "sink: unknown sink '" + std::string(spec) + "' (use stdout, jsonl:PATH or null)");
}

}  // namespace kc
