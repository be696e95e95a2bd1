#include "support/kc_tool.hpp"

#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "support/common.hpp"

namespace kc::test {
namespace {

enum class Event { assigned, revoked, lost };

// Calls fn(event, partition) for each partition of `topic` named on a
// "kc: assigned|revoked|lost T[p] T[q] (...)" line, in log order.
template <typename Fn>
void for_each_event(std::string_view log, std::string_view topic, Fn&& fn) {
  static constexpr std::pair<std::string_view, Event> kMarkers[] = {
      {"kc: assigned ", Event::assigned}, {"kc: revoked ", Event::revoked}, {"kc: lost ", Event::lost}};
  std::size_t pos = 0;
  while (pos < log.size()) {
    auto nl = log.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = log.size();
    }
    const auto line = log.substr(pos, nl - pos);
    pos = nl + 1;
    for (const auto& [marker, event] : kMarkers) {
      const auto at = line.find(marker);
      if (at == std::string_view::npos) {
        continue;
      }
      // Tokens "topic[p]" separated by spaces, up to the first token that is not one.
      auto rest = line.substr(at + marker.size());
      while (!rest.empty()) {
        const auto sp = rest.find(' ');
        const auto token = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
        if (token.empty()) {
          continue;  // an empty assignment logs two spaces
        }
        const auto open = token.rfind('[');
        if (open == std::string_view::npos || token.back() != ']') {
          break;
        }
        if (token.substr(0, open) == topic) {
          fn(event, std::atoi(std::string(token.substr(open + 1, token.size() - open - 2)).c_str()));
        }
      }
      break;
    }
  }
}

}  // namespace

std::string kc_tool_path() {
  const char* env = std::getenv("KC_TEST_TOOL");
  std::string path = env != nullptr && *env != '\0' ? env : KC_TOOL_PATH;
  if (::access(path.c_str(), X_OK) != 0) {
    throw Failure("the kc tool is not at " + path + " (build the kc_tool target, or set KC_TEST_TOOL)");
  }
  return path;
}

std::set<int> owned_partitions(std::string_view log, std::string_view topic) {
  std::set<int> owned;
  for_each_event(log, topic, [&](Event e, int p) {
    if (e == Event::assigned) {
      owned.insert(p);
    } else {
      owned.erase(p);
    }
  });
  return owned;
}

std::set<int> ever_assigned(std::string_view log, std::string_view topic) {
  std::set<int> out;
  for_each_event(log, topic, [&](Event e, int p) {
    if (e == Event::assigned) {
      out.insert(p);
    }
  });
  return out;
}

std::vector<std::string> consume_args(const std::string& bootstrap, const std::string& group, const std::string& topic,
                                      const std::filesystem::path& sink, const std::string& value_format,
                                      const std::vector<std::string>& extra) {
  // clang-format off
  std::vector<std::string> args = {"consume",
                                   "--bootstrap-servers", bootstrap,
                                   "--group", group,
                                   "--topic", topic,
                                   "--from-beginning",
                                   "--value-format", value_format,
                                   "--sink", "jsonl:" + sink.string()};
  // clang-format on
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::string describe(Subprocess& p) {
  p.running();  // reap if it ended
  return "\n  command: " + p.command() + "\n  status: " + (p.status() ? p.status()->to_string() : "running") +
         "\n  stderr (" + p.stderr_path().string() + ") ends with:\n" + tail(p.stderr_text(), 30);
}

ToolRun run_tool(const TempDir& dir, const std::vector<std::string>& args, std::chrono::seconds timeout) {
  static int counter = 0;
  const auto name = "run-" + std::to_string(++counter);
  Subprocess p(kc_tool_path(), args, dir / (name + ".out"), dir / (name + ".err"));
  const auto st = p.wait(timeout);
  if (!st) {
    throw Failure(p.command() + ": still running after " + std::to_string(timeout.count()) + " s; stderr:\n" +
                  tail(p.stderr_text()));
  }
  return {*st, p.stdout_text(), p.stderr_text(), p.command()};
}

std::string describe(const ToolRun& r) {
  return "\n  command: " + r.command + "\n  status: " + r.status.to_string() + "\n  stdout:\n" + tail(r.out, 30) +
         "\n  stderr:\n" + tail(r.err, 30);
}

}  // namespace kc::test
