#include "schema/jsonschema/jsonschema.hpp"

#include <cstdio>
#include <map>
#include <new>
#include <regex>
#include <stdexcept>
#include <utility>

#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/constraints/concrete_constraints.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "kc/error.hpp"

namespace kc::schema::detail::jsonschema {

class Schema {
 public:
  // valijson copies everything it needs out of the nlohmann documents while
  // parsing (its document cache is freed at the end of populateSchema), so
  // the compiled schema owns no JSON document.
  valijson::Schema compiled;
  // valijson matches "patternProperties" keys with std::regex itself: when
  // the schema has any, validate() bounds the length of every key first.
  bool bound_keys = false;
};

namespace {

using Parser = valijson::SchemaParser;
using Adapter = valijson::adapters::NlohmannJsonAdapter;

// valijson recurses once (several frames) per nesting level both when it
// parses a schema and when it validates a document. The caller bounds the
// depth of documents, but validate() promises to cope with any input (the
// fuzzer feeds it anything), and schemas come from a registry that anyone
// with write access fills: both are bounded here before valijson sees them.
constexpr std::size_t kMaxDocumentDepth = 512;
constexpr std::size_t kMaxSchemaDepth = 256;
constexpr std::size_t kMaxErrors = 3;
constexpr std::size_t kMaxPartLength = 200;

// Nesting depth of JSON text, strings skipped; stops counting at `limit`.
// Works on any bytes (not-JSON included): it only has to be an upper bound
// of what nlohmann would build.
bool deeper_than(std::string_view text, std::size_t limit) noexcept {
  std::size_t depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

// Keeps error text on one line and short: property names and refs come from
// the data and the schema, and may hold anything.
void append_clean(std::string& out, std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) {
    if (++n > kMaxPartLength) {
      out += "...";
      return;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else {
      out += c;
    }
  }
}

std::string clean(std::string_view s) {
  std::string out;
  append_clean(out, s);
  return out;
}

[[noreturn]] void fail(const std::string& what) {
  throw Error(errc::schema_invalid, "JSON Schema: " + what);
}

// The draft a schema claims in "$schema". valijson 1.0 knows drafts 3, 4
// and 7; draft 6 is a subset of 7 for everything valijson checks, and the
// 2019-09 and 2020-12 drafts are read as draft 7 (README: limits).
Parser::Version pick_draft(const nlohmann::json& doc) {
  if (!doc.is_object()) return Parser::kDraft7;
  const auto it = doc.find("$schema");
  if (it == doc.end() || !it->is_string()) return Parser::kDraft7;
  const auto& uri = it->get_ref<const std::string&>();
  if (uri.find("draft-04") != std::string::npos) return Parser::kDraft4;
  if (uri.find("draft-03") != std::string::npos) fail("draft 3 is not supported (\"$schema\": \"" + clean(uri) + "\")");
  return Parser::kDraft7;
}

nlohmann::json parse_document(std::string_view text, std::string_view what) {
  if (deeper_than(text, kMaxSchemaDepth)) {
    fail(std::string(what) + " nests deeper than " + std::to_string(kMaxSchemaDepth));
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(std::string(what) + " is not JSON: " + clean(e.what()));
  }
}

// RFC 3986 reference resolution, enough for schema ids and refs (no
// dot-segment removal). valijson 1.0 concatenates scope and reference
// ("http://h/a.json" + "b.json" -> "http://h/a.jsonb.json"), hence this.
std::string resolve_uri(std::string_view base, std::string_view ref) {
  if (ref.find("://") != std::string_view::npos || ref.starts_with("urn:") || ref.starts_with("URN:")) {
    return std::string(ref);
  }
  base = base.substr(0, base.find('#'));
  if (ref.empty()) return std::string(base);
  if (ref.front() == '#') return std::string(base) + std::string(ref);
  const auto scheme_end = base.find("://");
  if (ref.starts_with("//")) {
    return scheme_end == std::string_view::npos ? std::string(ref)
                                                : std::string(base.substr(0, scheme_end + 1)) + std::string(ref);
  }
  const std::size_t authority = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  const auto path_start = base.find('/', authority);
  if (ref.front() == '/') {
    return std::string(path_start == std::string_view::npos ? base : base.substr(0, path_start)) + std::string(ref);
  }
  if (path_start == std::string_view::npos) {
    return scheme_end == std::string_view::npos ? std::string(ref) : std::string(base) + "/" + std::string(ref);
  }
  return std::string(base.substr(0, base.find_last_of('/') + 1)) + std::string(ref);
}

// valijson matches "pattern" and the date formats with std::regex, whose
// libstdc++ executor recurses once per character: a record with a string of
// some 30,000 characters overflows an 8 MiB stack. kc therefore renames
// those keywords (Preparer) and checks them with these constraints, which
// bound the input first and compile each regex once per schema (shared,
// const: safe from several threads).
constexpr std::size_t kMaxPatternInput = 4096;  // bytes matched against a "pattern"
constexpr std::size_t kMaxDateInput = 256;      // RFC 3339 values are ~35 bytes
constexpr const char* kPatternKey = "$kc-pattern";
constexpr const char* kFormatKey = "$kc-format";

template <class Derived>
class Poly : public valijson::constraints::PolyConstraint {
 private:
  Constraint* cloneInto(void* memory) const override {
    return new (memory) Derived(static_cast<const Derived&>(*this));
  }
  std::size_t sizeOf() const override { return sizeof(Derived); }
};

bool fail_with(valijson::ValidationResults* results, const std::vector<std::string>& context, std::string what) {
  if (results != nullptr) results->pushError(context, what);
  return false;
}

class PatternConstraint final : public Poly<PatternConstraint> {
 public:
  explicit PatternConstraint(const std::string& pattern) : regex_(std::make_shared<const std::regex>(pattern)) {}

  bool validate(const valijson::adapters::Adapter& target, const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString()) return true;
    const std::string s = target.asString();
    if (s.size() > kMaxPatternInput) {
      return fail_with(results, context,
                       "String of " + std::to_string(s.size()) +
                           " bytes is longer than kc matches against 'pattern' (" + std::to_string(kMaxPatternInput) +
                           ").");
    }
    if (std::regex_search(s, *regex_)) return true;
    return fail_with(results, context, "Failed to match regex specified by 'pattern' constraint.");
  }

 private:
  std::shared_ptr<const std::regex> regex_;
};

// valijson 1.0's checks of "date", "time" and "date-time" (same regexes,
// same day-of-month rule), on strings of bounded length.
class DateFormatConstraint final : public Poly<DateFormatConstraint> {
 public:
  explicit DateFormatConstraint(std::string format) : format_(std::move(format)) {
    static const auto date = std::make_shared<const std::regex>("^([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])$");
    static const auto time = std::make_shared<const std::regex>(
        "^([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(\\.[0-9]+)?(([Zz])|([\\+|\\-]([01][0-9]|2[0-3]):[0-5][0-9]))"
        "$");
    static const auto date_time = std::make_shared<const std::regex>(
        "^([0-9]+)-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):([0-5][0-9]):([0-5][0-9]|60)(\\.["
        "0-9]+)?(([Zz])|([\\+|\\-]([01][0-9]|2[0-3]):[0-5][0-9]))$");
    regex_ = format_ == "date" ? date : format_ == "time" ? time : date_time;
  }

  static bool applies_to(const std::string& format) {
    return format == "date" || format == "time" || format == "date-time";
  }

  bool validate(const valijson::adapters::Adapter& target, const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString()) return true;
    const std::string s = target.asString();
    std::smatch m;
    if (s.size() <= kMaxDateInput && std::regex_match(s, m, *regex_)) {
      if (format_ == "time") return true;
      const int month = std::stoi(m[2].str());
      const int day = std::stoi(m[3].str());
      const int days = month == 2 ? 29 : (month <= 7 ? (month % 2 == 0 ? 30 : 31) : (month % 2 == 0 ? 31 : 30));
      if (day <= days) return true;
    }
    return fail_with(results, context, "String should be a valid " + format_);
  }

 private:
  std::string format_;
  std::shared_ptr<const std::regex> regex_;
};

class PatternBuilder final : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(const valijson::adapters::Adapter& node) const override {
    return new PatternConstraint(node.asString());
  }
};

class DateFormatBuilder final : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(const valijson::adapters::Adapter& node) const override {
    return new DateFormatConstraint(node.asString());
  }
};

// Subschemas that declare an id, by their absolute URI: "$ref"s to them are
// served from the document that holds them (valijson 1.0 would fetch them).
using Embedded = std::map<std::string, const nlohmann::json*, std::less<>>;

// One walk over the keywords that hold subschemas (drafts 4-7), before
// valijson sees a document:
// - compiles every "pattern" and "patternProperties" key once: std::regex
//   throws on a bad one when valijson first uses it, during validation, and
//   a bad pattern is a bad schema, not a failure of each record (patterns
//   reached only through a "$ref" elsewhere are caught by validate());
// - rewrites ids to absolute URIs (valijson resolves relative ids by
//   concatenation) and, for drafts 6 and 7, copies "$id" to "id", the only
//   spelling valijson 1.0 reads;
// - records each identified subschema in `embedded`.
class Preparer {
 public:
  Preparer(Parser::Version version, Embedded& embedded) : version_(version), embedded_(embedded) {}

  bool saw_pattern_properties() const noexcept { return saw_pattern_properties_; }

  void walk(nlohmann::json& s, const std::string& scope, const std::string& path) {
    if (!s.is_object()) return;
    std::string here_scope = scope;
    const char* id_key = version_ == Parser::kDraft4 ? "id" : "$id";
    if (const auto it = s.find(id_key); it != s.end() && it->is_string()) {
      const std::string id = it->get_ref<const std::string&>();  // a copy: s["id"] is replaced below
      const bool absolute_base = scope.find("://") != std::string::npos || scope.starts_with("urn:");
      here_scope = absolute_base || scope.empty() ? resolve_uri(scope, id) : id;
      s["id"] = here_scope;
      if (!id.starts_with("#")) embedded_.emplace(here_scope.substr(0, here_scope.find('#')), &s);
    }
    bool rename_pattern = false;
    bool rename_format = false;
    for (auto& [key, value] : s.items()) {
      const std::string here = path + "/" + key;
      if (key == "pattern" && value.is_string()) {
        compile(value.get_ref<const std::string&>(), here);
        rename_pattern = true;
      } else if (key == "format" && value.is_string()) {
        rename_format = DateFormatConstraint::applies_to(value.get_ref<const std::string&>());
      } else if (key == "additionalItems" || key == "additionalProperties" || key == "contains" || key == "not" ||
                 key == "if" || key == "then" || key == "else" || key == "propertyNames") {
        walk(value, here_scope, here);
      } else if (key == "items" || key == "allOf" || key == "anyOf" || key == "oneOf") {
        if (value.is_array()) {
          for (std::size_t i = 0; i < value.size(); ++i) walk(value[i], here_scope, here + "/" + std::to_string(i));
        } else {
          walk(value, here_scope, here);
        }
      } else if (key == "definitions" || key == "properties" || key == "patternProperties" || key == "dependencies") {
        if (!value.is_object()) continue;
        for (auto& [name, sub] : value.items()) {
          if (key == "patternProperties") {
            compile(name, here + "/" + name);
            saw_pattern_properties_ = true;
          }
          walk(sub, here_scope, here + "/" + name);
        }
      }
    }
    // Not while iterating s: see PatternConstraint.
    if (rename_pattern) rename(s, "pattern", kPatternKey);
    if (rename_format) rename(s, "format", kFormatKey);
  }

 private:
  static void rename(nlohmann::json& s, const char* from, const char* to) {
    s[to] = std::move(s[from]);
    s.erase(from);
  }

  static void compile(const std::string& pattern, const std::string& where) {
    try {
      const std::regex re(pattern);
    } catch (const std::regex_error& e) {
      fail("bad regular expression at " + clean(where) + ": " + e.what());
    }
  }

  Parser::Version version_;
  Embedded& embedded_;
  bool saw_pattern_properties_ = false;
};

std::string_view last_segment(std::string_view uri) {
  const auto slash = uri.find_last_of('/');
  return slash == std::string_view::npos ? uri : uri.substr(slash + 1);
}

// The referenced documents, by name, parsed once and alive for the whole of
// parse(): valijson's fetchDoc hands out pointers into them and freeDoc has
// nothing to free.
class References {
 public:
  References(const std::vector<NamedSchema>& refs, Preparer& preparer, const Embedded& embedded) : embedded_(embedded) {
    for (const auto& r : refs) {
      auto doc = parse_document(r.text, "referenced schema '" + clean(r.name) + "'");
      // The first of two with one name wins: `embedded` points into it.
      auto [it, inserted] = docs_.try_emplace(r.name, std::move(doc));
      if (inserted) preparer.walk(it->second, r.name, clean(r.name) + "#");
    }
  }

  // Identified subschemas first, then the exact name; then, as the registry
  // names JSON references by the URI written in "$ref" (often relative,
  // while valijson resolves it against the referring schema's id), a unique
  // match of the last path segment.
  const nlohmann::json* find(const std::string& uri) const {
    if (const auto it = embedded_.find(uri); it != embedded_.end()) return it->second;
    if (const auto it = docs_.find(uri); it != docs_.end()) return &it->second;
    const auto want = last_segment(uri);
    const nlohmann::json* found = nullptr;
    if (!want.empty()) {
      for (const auto& [name, doc] : docs_) {
        if (last_segment(name) != want) continue;
        if (found != nullptr) fail("reference '" + clean(uri) + "' matches more than one referenced schema");
        found = &doc;
      }
    }
    if (found == nullptr) {
      std::string known;
      for (const auto& [name, doc] : docs_) {
        known += known.empty() ? "" : ", ";
        known += clean(name);
      }
      fail("unknown reference '" + clean(uri) + "' (references given: " + (known.empty() ? "none" : known) + ")");
    }
    return found;
  }

 private:
  const Embedded& embedded_;
  std::map<std::string, nlohmann::json, std::less<>> docs_;
};

// valijson with RFC 3986 resolution of "$ref" against the current scope.
class SchemaParser final : public Parser {
 public:
  using Parser::Parser;

 private:
  opt::optional<std::string> resolveDocumentUri(const opt::optional<std::string>& scope,
                                                const opt::optional<std::string>& document) override {
    if (scope && document) return resolve_uri(*scope, *document);
    if (scope) return scope;
    return document;
  }
};

// valijson's context is {"<root>", "[name]", "[0]", ...}; this renders it as
// a JSON pointer ("(root)" for the document itself).
void append_pointer(std::string& out, const std::vector<std::string>& context) {
  const std::size_t start = out.size();
  for (const auto& part : context) {
    if (part == "<root>") continue;
    std::string_view p = part;
    if (p.size() >= 2 && p.front() == '[' && p.back() == ']') p = p.substr(1, p.size() - 2);
    std::string escaped;
    for (const char c : p) {
      if (c == '~') {
        escaped += "~0";
      } else if (c == '/') {
        escaped += "~1";
      } else {
        escaped += c;
      }
    }
    out += '/';
    append_clean(out, escaped);
  }
  if (out.size() == start) out += "(root)";
}

// valijson reports a failure at every level: the leaf ("Expected number
// greater than or equal to 1") and then each parent ("Failed to validate
// against schema associated with property name 'qty'."). Only the leaves say
// something; the parents are shown when there is nothing else.
bool is_summary(const std::string& d) {
  return d.starts_with("Failed to validate against schema associated with") ||
         d.starts_with("Failed to validate item #") ||
         d.starts_with("Failed to validate against additional properties schema");
}

void describe(const valijson::ValidationResults& results, std::string& error) {
  error.clear();
  std::size_t shown = 0;
  for (const bool summaries : {false, true}) {
    for (const auto& e : results) {
      if (shown == kMaxErrors) return;
      if (is_summary(e.description) != summaries) continue;
      if (shown++ > 0) error += "; ";
      append_pointer(error, e.context);
      error += ": ";
      append_clean(error, e.description);
    }
    if (shown > 0) return;
  }
  if (shown == 0) error = "(root): does not match the schema";
}

// The first object key longer than kMaxPatternInput, as "<pointer>: ...".
bool find_long_key(const nlohmann::json& j, std::vector<std::string>& path, std::string& error) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      path.push_back("[" + key.substr(0, kMaxPartLength) + "]");
      if (key.size() > kMaxPatternInput) {
        append_pointer(error, path);
        error += ": Property name of " + std::to_string(key.size()) +
                 " bytes is longer than kc matches against 'patternProperties' (" + std::to_string(kMaxPatternInput) +
                 ").";
        return true;
      }
      if (find_long_key(value, path, error)) return true;
      path.pop_back();
    }
  } else if (j.is_array()) {
    for (std::size_t i = 0; i < j.size(); ++i) {
      path.push_back("[" + std::to_string(i) + "]");
      if (find_long_key(j[i], path, error)) return true;
      path.pop_back();
    }
  }
  return false;
}

}  // namespace

std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<NamedSchema>& references) {
  nlohmann::json root = parse_document(text, "schema");
  const Parser::Version version = pick_draft(root);
  // `embedded` points into `root` and the referenced documents: neither
  // changes shape after its walk, and all outlive populateSchema().
  Embedded embedded;
  Preparer preparer(version, embedded);
  preparer.walk(root, "", "#");
  const References refs(references, preparer, embedded);

  auto schema = std::make_shared<Schema>();
  schema->bound_keys = preparer.saw_pattern_properties();
  SchemaParser parser(version);
  // The parser owns a builder once addConstraintBuilder() returns.
  auto pattern_builder = std::make_unique<PatternBuilder>();
  parser.addConstraintBuilder(kPatternKey, pattern_builder.get());
  pattern_builder.release();
  auto format_builder = std::make_unique<DateFormatBuilder>();
  parser.addConstraintBuilder(kFormatKey, format_builder.get());
  format_builder.release();
  const Adapter adapter(root);
  try {
    parser.populateSchema<Adapter>(
        adapter, schema->compiled, [&refs](const std::string& uri) { return refs.find(uri); },
        [](const nlohmann::json*) {});
  } catch (const Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // valijson reports bad schemas with std::runtime_error/logic_error, and
    // nlohmann with its own exceptions when a keyword has the wrong type.
    fail(clean(e.what()));
  }
  return schema;
}

bool validate(const Schema& schema, std::string_view json, std::string& error) {
  if (deeper_than(json, kMaxDocumentDepth)) {
    error = "(root): document nests deeper than " + std::to_string(kMaxDocumentDepth);
    return false;
  }
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json.begin(), json.end());
  } catch (const nlohmann::json::exception& e) {
    error = "(root): not JSON: " + clean(e.what());
    return false;
  }

  if (schema.bound_keys) {
    std::vector<std::string> path;
    error.clear();
    if (find_long_key(doc, path, error)) return false;
  }

  // A Validator caches compiled regexes, so it is state: one per call keeps
  // the shared Schema free of it (and validate() free of locks).
  valijson::Validator validator;
  valijson::ValidationResults results;
  try {
    if (validator.validate(schema.compiled, Adapter(doc), &results)) return true;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // A "patternProperties" regex the Preparer could not reach (a "$ref" to
    // an odd place: std::regex_error), or a regex that exhausted libstdc++'s
    // backtracking budget (error_complexity).
    error = "(root): cannot validate: ";
    append_clean(error, e.what());
    return false;
  }
  describe(results, error);
  return false;
}

}  // namespace kc::schema::detail::jsonschema
