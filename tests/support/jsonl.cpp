#include "support/jsonl.hpp"

#include <simdjson.h>

#include <algorithm>
#include <unordered_set>

#include "support/common.hpp"

namespace kc::test {

std::vector<SinkRecord> read_jsonl(const std::filesystem::path& path, std::string* partial_tail) {
  if (!std::filesystem::exists(path)) {
    throw Failure("read_jsonl: " + path.string() + " does not exist");
  }
  std::string text = read_file(path);
  if (partial_tail != nullptr) {
    partial_tail->clear();
  }
  if (!text.empty() && text.back() != '\n') {
    const auto nl = text.rfind('\n');
    const auto start = nl == std::string::npos ? 0 : nl + 1;
    if (partial_tail == nullptr) {
      throw Failure("read_jsonl: " + path.string() + " (" + std::to_string(text.size()) +
                    " bytes) ends with a partial line (" + std::to_string(text.size() - start) +
                    " bytes without a newline): '" + text.substr(start, 200) + "'");
    }
    *partial_tail = text.substr(start);
    text.resize(start);
  }
  std::vector<SinkRecord> out;
  simdjson::dom::parser parser;
  // The DOM keeps no source text; the On-Demand API gives the value's text
  // as written (SinkRecord::value_json) from a second pass over the line.
  simdjson::ondemand::parser raw_parser;
  std::size_t pos = 0;
  std::size_t line_no = 0;
  while (pos < text.size()) {
    const auto nl = text.find('\n', pos);
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    auto bad = [&](const std::string& why) {
      return Failure("read_jsonl: " + path.string() + " line " + std::to_string(line_no) + ": " + why + ": '" +
                     std::string(line.substr(0, 300)) + "'");
    };
    simdjson::dom::element doc;
    if (auto err = parser.parse(line.data(), line.size()).get(doc); err) {
      throw bad(std::string("not JSON (") + simdjson::error_message(err) + ")");
    }
    SinkRecord r;
    std::string_view topic;
    std::int64_t partition = 0;
    if (doc["topic"].get(topic) || doc["partition"].get(partition) || doc["offset"].get(r.offset)) {
      throw bad("no topic, partition or offset");
    }
    r.topic = std::string(topic);
    r.partition = static_cast<std::int32_t>(partition);
    simdjson::dom::element value;
    if (doc["value"].get(value)) {
      throw bad("no value");
    }
    if (!value.is_null()) {
      std::string_view v;
      if (value.get(v)) {
        // A decoded document (--value-format json and the registry
        // formats): its minified JSON text.
        r.value = simdjson::minify(value);
      } else {
        r.value = std::string(v);
      }
    }
    std::string_view encoding;
    r.value_base64 = !doc["value_encoding"].get(encoding) && encoding == "base64";
    const simdjson::padded_string padded(line);
    simdjson::ondemand::document raw_doc;
    simdjson::ondemand::value raw_value;
    std::string_view raw;
    if (raw_parser.iterate(padded).get(raw_doc) || raw_doc["value"].get(raw_value) ||
        simdjson::to_json_string(raw_value).get(raw)) {
      throw bad("the value's text cannot be read back");
    }
    r.value_json = std::string(raw);
    out.push_back(std::move(r));
  }
  return out;
}

std::size_t count_lines(const std::filesystem::path& path) {
  const std::string text = read_file(path);
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

std::string Coverage::to_string() const {
  return "lines=" + std::to_string(lines) + " distinct=" + std::to_string(distinct) +
         " expected=" + std::to_string(expected) + " missing=" + std::to_string(missing) +
         " duplicates=" + std::to_string(duplicates) + " out_of_range=" + std::to_string(out_of_range) +
         " value_mismatch=" + std::to_string(value_mismatch) + " duplicate_values=" + std::to_string(duplicate_values) +
         (first_missing.empty() ? "" : " first_missing=" + first_missing);
}

Coverage coverage(const std::vector<SinkRecord>& records, const std::string& topic,
                  const std::vector<std::int64_t>& high_watermarks) {
  Coverage c;
  c.lines = records.size();
  // Per partition: the value seen at each offset (index = offset).
  std::vector<std::vector<const SinkRecord*>> seen(high_watermarks.size());
  for (std::size_t p = 0; p < high_watermarks.size(); ++p) {
    seen[p].assign(static_cast<std::size_t>(high_watermarks[p]), nullptr);
    c.expected += static_cast<std::uint64_t>(high_watermarks[p]);
  }
  for (const auto& r : records) {
    if (r.topic != topic || r.partition < 0 || static_cast<std::size_t>(r.partition) >= seen.size() || r.offset < 0 ||
        r.offset >= high_watermarks[static_cast<std::size_t>(r.partition)]) {
      ++c.out_of_range;
      continue;
    }
    auto& slot = seen[static_cast<std::size_t>(r.partition)][static_cast<std::size_t>(r.offset)];
    if (slot == nullptr) {
      slot = &r;
      ++c.distinct;
    } else {
      ++c.duplicates;
      if (slot->value != r.value) {
        ++c.value_mismatch;
      }
    }
  }
  std::unordered_set<std::string_view> values;
  values.reserve(c.distinct);
  for (std::size_t p = 0; p < seen.size(); ++p) {
    std::int64_t gap_start = -1;
    for (std::size_t o = 0; o <= seen[p].size(); ++o) {
      const bool present = o < seen[p].size() && seen[p][o] != nullptr;
      if (o < seen[p].size() && !present) {
        ++c.missing;
        if (gap_start < 0) {
          gap_start = static_cast<std::int64_t>(o);
        }
      } else if (gap_start >= 0) {
        if (c.first_missing.empty()) {
          c.first_missing = "p" + std::to_string(p) + " o" + std::to_string(gap_start) + ".." + std::to_string(o - 1) +
                            " (" + std::to_string(static_cast<std::int64_t>(o) - gap_start) + ")";
        }
        gap_start = -1;
      }
      if (present && seen[p][o]->value && !values.insert(*seen[p][o]->value).second) {
        ++c.duplicate_values;
      }
    }
  }
  return c;
}

}  // namespace kc::test
