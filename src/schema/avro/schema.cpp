// Avro schema parsing (over simdjson's DOM) and writer-to-reader resolution.
// Our own code rather than avro-c: avro-c's datum reader allocates whatever
// length a payload claims, and its schema objects are reference-counted trees
// that are slow to walk; a flat node array indexed by uint32 keeps recursive
// types simple (a reference is an index) and the decoder's walk cache-friendly.
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

#include "kc/error.hpp"
#include "schema/avro/internal.hpp"

namespace kc::schema::detail::avro {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

[[noreturn]] void invalid(const std::string& what) {
  throw Error(errc::schema_invalid, "invalid Avro schema: " + what);
}

struct Primitive {
  std::string_view name;
  Kind kind;
};
constexpr Primitive kPrimitives[] = {
    {"null", Kind::null_},   {"boolean", Kind::boolean}, {"int", Kind::int_},     {"long", Kind::long_},
    {"float", Kind::float_}, {"double", Kind::double_},  {"bytes", Kind::bytes}, {"string", Kind::string},
};

int primitive_index(std::string_view name) {
  for (std::size_t i = 0; i < std::size(kPrimitives); ++i) {
    if (kPrimitives[i].name == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool valid_name(std::string_view n) {
  if (n.empty() || !(std::isalpha(static_cast<unsigned char>(n[0])) || n[0] == '_')) {
    return false;
  }
  return std::all_of(n.begin(), n.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; });
}

bool valid_full_name(std::string_view n) {
  std::size_t start = 0;
  while (true) {
    const auto dot = n.find('.', start);
    if (!valid_name(n.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    start = dot + 1;
  }
}

std::string_view unqualified(std::string_view full) {
  const auto dot = full.rfind('.');
  return dot == std::string_view::npos ? full : full.substr(dot + 1);
}

std::string json_quote(std::string_view s) {
  // Names and symbols are [A-Za-z0-9_] only, so no escaping is needed.
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  out += s;
  out += '"';
  return out;
}

std::string describe(element e) {
  std::string s = simdjson::to_string(e);
  if (s.size() > 60) {
    s.resize(57);
    s += "...";
  }
  return s;
}

class Parser {
 public:
  explicit Parser(Schema& s) : s_(s) {
    for (const auto& p : kPrimitives) {
      Node n;
      n.kind = p.kind;
      s_.nodes.push_back(std::move(n));
    }
  }

  std::uint32_t parse_document(std::string_view text, const std::string& what) {
    simdjson::dom::parser parser;
    const simdjson::padded_string padded(text);
    element doc;
    if (auto e = parser.parse(padded).get(doc); e != simdjson::SUCCESS) {
      invalid(what + " is not JSON: " + simdjson::error_message(e));
    }
    return parse(doc, "");
  }

 private:
  std::uint32_t add(Node n) {
    s_.nodes.push_back(std::move(n));
    return static_cast<std::uint32_t>(s_.nodes.size() - 1);
  }

  std::uint32_t lookup(std::string_view name, const std::string& ns) {
    if (const int p = primitive_index(name); p >= 0) {
      return static_cast<std::uint32_t>(p);
    }
    if (name.find('.') == std::string_view::npos && !ns.empty()) {
      if (auto it = named_.find(ns + "." + std::string(name)); it != named_.end()) {
        return it->second;
      }
    }
    if (auto it = named_.find(std::string(name)); it != named_.end()) {
      return it->second;
    }
    invalid("unknown type \"" + std::string(name) + "\"" + (ns.empty() ? "" : " (in namespace " + ns + ")"));
  }

  static std::string_view get_string(element obj, const char* key, bool required, std::string_view ctx) {
    element v;
    if (obj.at_key(key).get(v) != simdjson::SUCCESS) {
      if (required) {
        invalid(std::string(ctx) + " has no \"" + key + "\"");
      }
      return {};
    }
    std::string_view sv;
    if (v.get_string().get(sv) != simdjson::SUCCESS) {
      invalid(std::string(ctx) + ": \"" + key + "\" must be a string, not " + describe(v));
    }
    return sv;
  }

  // Full name and namespace of a named type definition (spec "Names").
  std::pair<std::string, std::string> define_name(element obj, const std::string& ns, std::string_view kind) {
    const std::string_view name = get_string(obj, "name", true, std::string(kind));
    std::string full;
    std::string new_ns;
    if (name.find('.') != std::string_view::npos) {
      full = name;
      new_ns = full.substr(0, full.rfind('.'));
    } else {
      element nsv;
      if (obj.at_key("namespace").get(nsv) == simdjson::SUCCESS && !nsv.is_null()) {
        std::string_view sv;
        if (nsv.get_string().get(sv) != simdjson::SUCCESS) {
          invalid(std::string(kind) + " " + std::string(name) + ": \"namespace\" must be a string");
        }
        new_ns = sv;
      } else {
        new_ns = ns;
      }
      full = new_ns.empty() ? std::string(name) : new_ns + "." + std::string(name);
    }
    if (!valid_full_name(full)) {
      invalid("\"" + full + "\" is not a valid " + std::string(kind) + " name");
    }
    if (primitive_index(unqualified(full)) >= 0 && full.find('.') == std::string::npos) {
      invalid("a " + std::string(kind) + " may not be named \"" + full + "\"");
    }
    if (named_.count(full) != 0) {
      invalid("type \"" + full + "\" is defined twice");
    }
    return {full, new_ns};
  }

  std::vector<std::string> aliases(element obj, const std::string& ctx) {
    std::vector<std::string> out;
    element a;
    if (obj.at_key("aliases").get(a) != simdjson::SUCCESS) {
      return out;
    }
    simdjson::dom::array arr;
    if (a.get_array().get(arr) != simdjson::SUCCESS) {
      invalid(ctx + ": \"aliases\" must be an array of strings");
    }
    for (element x : arr) {
      std::string_view sv;
      if (x.get_string().get(sv) != simdjson::SUCCESS) {
        invalid(ctx + ": \"aliases\" must be an array of strings");
      }
      out.emplace_back(unqualified(sv));
    }
    return out;
  }

  std::uint32_t parse(element e, const std::string& ns) {
    if (++depth_ > 256) {
      invalid("nested more than 256 levels deep");
    }
    std::uint32_t r = 0;
    switch (e.type()) {
      case element_type::STRING: {
        std::string_view name;
        if (e.get_string().get(name) != simdjson::SUCCESS) {
          invalid("unreadable type name");
        }
        r = lookup(name, ns);
        break;
      }
      case element_type::ARRAY: r = parse_union(e, ns); break;
      case element_type::OBJECT: r = parse_object(e, ns); break;
      default: invalid("a schema must be a name, an object or an array, not " + describe(e));
    }
    --depth_;
    return r;
  }

  std::uint32_t parse_union(element e, const std::string& ns) {
    Node u;
    u.kind = Kind::union_;
    simdjson::dom::array arr;
    if (e.get_array().get(arr) != simdjson::SUCCESS) {
      invalid("a union must be an array");
    }
    for (element b : arr) {
      const std::uint32_t bi = parse(b, ns);
      const Node& bn = s_.nodes[bi];
      if (bn.kind == Kind::union_) {
        invalid("a union may not directly contain a union");
      }
      for (const std::uint32_t other : u.branches) {
        const Node& on = s_.nodes[other];
        const bool named = bn.kind == Kind::record || bn.kind == Kind::enum_ || bn.kind == Kind::fixed;
        if (named ? (on.kind == bn.kind || on.kind == Kind::record || on.kind == Kind::enum_ || on.kind == Kind::fixed) && on.name == bn.name
                  : on.kind == bn.kind) {
          invalid("union has two branches of type " + std::string(type_name(bn)));
        }
      }
      u.branches.push_back(bi);
    }
    if (u.branches.empty()) {
      invalid("a union must have at least one branch");
    }
    if (u.branches.size() > 0x7fffffff) {
      invalid("union too large");
    }
    return add(std::move(u));
  }

  std::uint32_t parse_object(element e, const std::string& ns) {
    element t;
    if (e.at_key("type").get(t) != simdjson::SUCCESS) {
      invalid("an object schema has no \"type\": " + describe(e));
    }
    std::string_view type;
    if (t.get_string().get(type) != simdjson::SUCCESS) {
      return parse(t, ns);  // {"type": {...}} or {"type": [...]}: lenient, as Java is
    }
    std::uint32_t r = 0;
    if (type == "record" || type == "error") {
      r = parse_record(e, ns);
    } else if (type == "enum") {
      r = parse_enum(e, ns);
    } else if (type == "fixed") {
      auto [full, new_ns] = define_name(e, ns, "fixed");
      Node n;
      n.kind = Kind::fixed;
      n.name = full;
      n.aliases = aliases(e, full);
      element sz;
      std::int64_t size = -1;
      if (e.at_key("size").get(sz) != simdjson::SUCCESS || sz.get_int64().get(size) != simdjson::SUCCESS || size < 0 ||
          size > 0x7fffffff) {
        invalid("fixed " + full + " needs a \"size\" that is a non-negative integer");
      }
      n.size = static_cast<std::uint32_t>(size);
      r = add(std::move(n));
      named_.emplace(full, r);
    } else if (type == "array" || type == "map") {
      const bool array = type == "array";
      element items;
      if (e.at_key(array ? "items" : "values").get(items) != simdjson::SUCCESS) {
        invalid(std::string(type) + " has no \"" + (array ? "items" : "values") + "\"");
      }
      const std::uint32_t it = parse(items, ns);
      Node n;
      n.kind = array ? Kind::array : Kind::map;
      n.items = it;
      r = add(std::move(n));
    } else if (const int p = primitive_index(type); p >= 0) {
      r = static_cast<std::uint32_t>(p);
    } else {
      r = lookup(type, ns);  // {"type": "com.example.Name"}
      return r;              // a reference: logical types apply to definitions only
    }
    return apply_logical(e, r);
  }

  // Per spec, a logical type that is unknown or does not fit its underlying
  // type is ignored (the underlying type is used).
  std::uint32_t apply_logical(element e, std::uint32_t r) {
    element lt;
    std::string_view logical;
    if (e.at_key("logicalType").get(lt) != simdjson::SUCCESS || lt.get_string().get(logical) != simdjson::SUCCESS) {
      return r;
    }
    const Kind k = s_.nodes[r].kind;
    Logical l = Logical::none;
    std::int64_t precision = 0;
    std::int64_t scale = 0;
    if (logical == "decimal" && (k == Kind::bytes || k == Kind::fixed)) {
      element p;
      element sc;
      if (e.at_key("precision").get(p) != simdjson::SUCCESS || p.get_int64().get(precision) != simdjson::SUCCESS ||
          precision <= 0 || precision > 0x7fffffff) {
        return r;
      }
      if (e.at_key("scale").get(sc) == simdjson::SUCCESS &&
          (sc.get_int64().get(scale) != simdjson::SUCCESS || scale < 0 || scale > precision)) {
        return r;
      }
      if (k == Kind::fixed) {
        const Node& f = s_.nodes[r];
        const double max_digits = f.size == 0 ? 0 : std::floor((8.0 * f.size - 1) * std::log10(2.0));
        if (static_cast<double>(precision) > max_digits) {
          return r;
        }
      }
      l = Logical::decimal;
    } else if (logical == "date" && k == Kind::int_) {
      l = Logical::date;
    } else if (logical == "time-millis" && k == Kind::int_) {
      l = Logical::time_millis;
    } else if (logical == "time-micros" && k == Kind::long_) {
      l = Logical::time_micros;
    } else if (logical == "timestamp-millis" && k == Kind::long_) {
      l = Logical::timestamp_millis;
    } else if (logical == "timestamp-micros" && k == Kind::long_) {
      l = Logical::timestamp_micros;
    } else if (logical == "local-timestamp-millis" && k == Kind::long_) {
      l = Logical::local_timestamp_millis;
    } else if (logical == "local-timestamp-micros" && k == Kind::long_) {
      l = Logical::local_timestamp_micros;
    } else if (logical == "uuid" && k == Kind::string) {
      l = Logical::uuid;
    } else {
      return r;
    }
    if (k == Kind::fixed) {  // a definition of its own: annotate it
      s_.nodes[r].logical = l;
      s_.nodes[r].precision = static_cast<std::int32_t>(precision);
      s_.nodes[r].scale = static_cast<std::int32_t>(scale);
      return r;
    }
    Node n = s_.nodes[r];  // a primitive: a node of its own
    n.logical = l;
    n.precision = static_cast<std::int32_t>(precision);
    n.scale = static_cast<std::int32_t>(scale);
    return add(std::move(n));
  }

  std::uint32_t parse_record(element e, const std::string& ns) {
    auto [full, new_ns] = define_name(e, ns, "record");
    Node n;
    n.kind = Kind::record;
    n.name = full;
    n.aliases = aliases(e, full);
    const std::uint32_t r = add(std::move(n));
    named_.emplace(full, r);  // before the fields: they may refer to it
    element fs;
    simdjson::dom::array arr;
    if (e.at_key("fields").get(fs) != simdjson::SUCCESS || fs.get_array().get(arr) != simdjson::SUCCESS) {
      invalid("record " + full + " needs a \"fields\" array");
    }
    std::vector<Field> fields;
    for (element fe : arr) {
      if (!fe.is_object()) {
        invalid("record " + full + ": a field must be an object, not " + describe(fe));
      }
      Field f;
      f.name = get_string(fe, "name", true, "a field of record " + full);
      const std::string ctx = "field " + full + "." + f.name;
      if (!valid_name(f.name)) {
        invalid("\"" + f.name + "\" is not a valid field name (record " + full + ")");
      }
      for (const auto& other : fields) {
        if (other.name == f.name) {
          invalid(ctx + " is defined twice");
        }
      }
      f.key_json = "," + json_quote(f.name) + ":";
      element ft;
      if (fe.at_key("type").get(ft) != simdjson::SUCCESS) {
        invalid(ctx + " has no \"type\"");
      }
      f.type = parse(ft, new_ns);
      element d;
      if (fe.at_key("default").get(d) == simdjson::SUCCESS) {
        f.default_json = simdjson::to_string(d);
      }
      f.aliases = aliases(fe, ctx);
      fields.push_back(std::move(f));
    }
    s_.nodes[r].fields = std::move(fields);
    return r;
  }

  std::uint32_t parse_enum(element e, const std::string& ns) {
    auto [full, new_ns] = define_name(e, ns, "enum");
    Node n;
    n.kind = Kind::enum_;
    n.name = full;
    n.aliases = aliases(e, full);
    element sy;
    simdjson::dom::array arr;
    if (e.at_key("symbols").get(sy) != simdjson::SUCCESS || sy.get_array().get(arr) != simdjson::SUCCESS) {
      invalid("enum " + full + " needs a \"symbols\" array");
    }
    for (element x : arr) {
      std::string_view sv;
      if (x.get_string().get(sv) != simdjson::SUCCESS || !valid_name(sv)) {
        invalid("enum " + full + ": " + describe(x) + " is not a valid symbol");
      }
      if (std::find(n.symbols.begin(), n.symbols.end(), sv) != n.symbols.end()) {
        invalid("enum " + full + ": symbol " + std::string(sv) + " appears twice");
      }
      n.symbols.emplace_back(sv);
      n.symbols_json.push_back(json_quote(sv));
    }
    if (n.symbols.size() > 0x7fffffff) {
      invalid("enum " + full + " has too many symbols");
    }
    const std::string_view def = get_string(e, "default", false, "enum " + full);
    if (!def.empty()) {
      const auto it = std::find(n.symbols.begin(), n.symbols.end(), def);
      if (it == n.symbols.end()) {
        invalid("enum " + full + ": default " + std::string(def) + " is not a symbol");
      }
      n.enum_default = static_cast<std::int32_t>(it - n.symbols.begin());
    }
    const std::uint32_t r = add(std::move(n));
    named_.emplace(full, r);
    return r;
  }

  Schema& s_;
  std::unordered_map<std::string, std::uint32_t> named_;
  int depth_ = 0;
};

// The fewest bytes one datum of each node takes: the least fixed point of the
// size equations, approached from 0 (every iterate is a valid lower bound, so
// stopping early on a pathological recursive schema stays safe).
void compute_min_sizes(Schema& s) {
  constexpr std::uint64_t kCap = 1u << 30;
  for (std::size_t iter = 0; iter <= s.nodes.size() + 1; ++iter) {
    bool changed = false;
    for (auto& n : s.nodes) {
      std::uint64_t m = 0;
      switch (n.kind) {
        case Kind::null_: m = 0; break;
        case Kind::boolean:
        case Kind::int_:
        case Kind::long_:
        case Kind::bytes:
        case Kind::string:
        case Kind::enum_:
        case Kind::array:
        case Kind::map: m = 1; break;
        case Kind::float_: m = 4; break;
        case Kind::double_: m = 8; break;
        case Kind::fixed: m = n.size; break;
        case Kind::record:
          for (const auto& f : n.fields) {
            m += s.nodes[f.type].min_size;
          }
          break;
        case Kind::union_: {
          std::uint64_t least = kCap;
          for (const auto b : n.branches) {
            least = std::min<std::uint64_t>(least, s.nodes[b].min_size);
          }
          m = 1 + least;
          break;
        }
      }
      m = std::min(m, kCap);
      if (m != n.min_size) {
        n.min_size = static_cast<std::uint32_t>(m);
        changed = true;
      }
    }
    if (!changed) {
      break;
    }
  }
}

void encode_defaults(Schema& s) {
  for (auto& n : s.nodes) {
    for (auto& f : n.fields) {
      if (f.default_json.empty()) {
        continue;
      }
      try {
        f.default_bin = encode_default(s, f.type, f.default_json);
        f.has_default = true;
      } catch (const Error& e) {
        f.default_error = e.what();
      }
    }
  }
}

// --- resolution ---

bool named_kind(Kind k) { return k == Kind::record || k == Kind::enum_ || k == Kind::fixed; }

class Resolver {
 public:
  Resolver(const Schema& w, const Schema& r, Resolution& res) : w_(w), r_(r), res_(res) {}

  std::uint32_t resolve(std::uint32_t wi, std::uint32_t ri) {
    const Node& wn = w_.nodes[wi];
    const Node& rn = r_.nodes[ri];
    if (wn.kind == Kind::union_) {
      RNode u;
      u.op = RNode::Op::writer_union;
      u.writer = wi;
      u.reader = ri;
      bool any = false;
      std::vector<std::uint32_t> branches;
      for (const auto b : wn.branches) {
        const std::uint32_t target = rn.kind == Kind::union_ ? pick(b, rn) : (match(b, ri) ? ri : kNone);
        branches.push_back(target == kNone ? kNone : resolve(b, target));
        any = any || target != kNone;
      }
      if (!any) {
        fail("no branch of the writer's union " + describe(wn) + " matches the reader's " + describe(rn));
      }
      u.branches = std::move(branches);
      return add(std::move(u));
    }
    if (rn.kind == Kind::union_) {
      const std::uint32_t target = pick(wi, rn);
      if (target == kNone) {
        fail("the writer's " + describe(wn) + " matches no branch of the reader's union " + describe(rn));
      }
      return resolve(wi, target);  // rendered as the plain branch value: no node of its own
    }
    if (!match(wi, ri)) {
      fail("the writer's " + describe(wn) + " cannot be read as the reader's " + describe(rn));
    }
    const auto key = std::make_pair(wi, ri);
    if (named_kind(wn.kind)) {
      if (auto it = memo_.find(key); it != memo_.end()) {
        return it->second;
      }
    }
    RNode n;
    n.writer = wi;
    n.reader = ri;
    switch (wn.kind) {
      case Kind::record: {
        n.op = RNode::Op::record;
        const std::uint32_t idx = add(std::move(n));
        memo_.emplace(key, idx);
        resolve_record(idx, wn, rn);
        return idx;
      }
      case Kind::enum_: {
        n.op = RNode::Op::enum_map;
        for (const auto& sym : wn.symbols) {
          const auto it = std::find(rn.symbols.begin(), rn.symbols.end(), sym);
          n.enum_map.push_back(it == rn.symbols.end() ? -1 : static_cast<std::int32_t>(it - rn.symbols.begin()));
        }
        const std::uint32_t idx = add(std::move(n));
        memo_.emplace(key, idx);
        return idx;
      }
      case Kind::array:
      case Kind::map: {
        n.op = wn.kind == Kind::array ? RNode::Op::array : RNode::Op::map;
        path_.emplace_back(wn.kind == Kind::array ? "[]" : "{}");
        n.child = resolve(wn.items, rn.items);
        path_.pop_back();
        return add(std::move(n));
      }
      default: {
        n.op = RNode::Op::scalar;
        const std::uint32_t idx = add(std::move(n));
        if (wn.kind == Kind::fixed) {
          memo_.emplace(key, idx);
        }
        return idx;
      }
    }
  }

 private:
  static std::string describe(const Node& n) { return std::string(type_name(n)); }

  [[noreturn]] void fail(const std::string& what) {
    std::string p;
    for (const auto& c : path_) {
      p += c;
    }
    invalid("writer and reader schemas do not resolve" + (p.empty() ? std::string() : " at " + p) + ": " + what);
  }

  std::uint32_t add(RNode n) {
    res_.nodes.push_back(std::move(n));
    return static_cast<std::uint32_t>(res_.nodes.size() - 1);
  }

  bool same_name(const Node& wn, const Node& rn) const {
    const auto wu = unqualified(wn.name);
    return wu == unqualified(rn.name) || std::find(rn.aliases.begin(), rn.aliases.end(), wu) != rn.aliases.end();
  }

  // Same type (named types by unqualified name or reader alias).
  bool exact(std::uint32_t wi, std::uint32_t ri) const {
    const Node& wn = w_.nodes[wi];
    const Node& rn = r_.nodes[ri];
    if (wn.kind != rn.kind) {
      return false;
    }
    if (named_kind(wn.kind)) {
      return same_name(wn, rn) && (wn.kind != Kind::fixed || wn.size == rn.size);
    }
    return true;
  }

  static bool promotable(Kind w, Kind r) {
    switch (w) {
      case Kind::int_: return r == Kind::long_ || r == Kind::float_ || r == Kind::double_;
      case Kind::long_: return r == Kind::float_ || r == Kind::double_;
      case Kind::float_: return r == Kind::double_;
      case Kind::string: return r == Kind::bytes;
      case Kind::bytes: return r == Kind::string;
      default: return false;
    }
  }

  bool match(std::uint32_t wi, std::uint32_t ri) const {
    return exact(wi, ri) || promotable(w_.nodes[wi].kind, r_.nodes[ri].kind);
  }

  // The reader union's branch for a (non-union) writer type: the first exact
  // match, else the first promotion.
  std::uint32_t pick(std::uint32_t wi, const Node& ru) const {
    for (const auto b : ru.branches) {
      if (exact(wi, b)) {
        return b;
      }
    }
    for (const auto b : ru.branches) {
      if (promotable(w_.nodes[wi].kind, r_.nodes[b].kind)) {
        return b;
      }
    }
    return kNone;
  }

  void resolve_record(std::uint32_t idx, const Node& wn, const Node& rn) {
    std::vector<RStep> steps;
    std::vector<bool> filled(rn.fields.size(), false);
    std::vector<std::uint32_t> emit;
    for (std::uint32_t wf = 0; wf < wn.fields.size(); ++wf) {
      const Field& f = wn.fields[wf];
      RStep st;
      st.writer_type = f.type;
      st.writer_field = wf;
      for (std::uint32_t rf = 0; rf < rn.fields.size(); ++rf) {
        const Field& g = rn.fields[rf];
        if (!filled[rf] && (g.name == f.name || std::find(g.aliases.begin(), g.aliases.end(), f.name) != g.aliases.end())) {
          path_.push_back("." + g.name);
          st.rnode = resolve(f.type, g.type);
          path_.pop_back();
          st.reader_field = rf;
          filled[rf] = true;
          emit.push_back(rf);
          break;
        }
      }
      steps.push_back(st);
    }
    std::vector<std::uint32_t> defaults;
    for (std::uint32_t rf = 0; rf < rn.fields.size(); ++rf) {
      if (filled[rf]) {
        continue;
      }
      const Field& g = rn.fields[rf];
      if (!g.has_default) {
        path_.push_back("." + g.name);
        fail(g.default_json.empty() ? "the reader's field has no default and the writer does not have it"
                                    : "the reader's field default does not fit its type: " + g.default_error);
      }
      defaults.push_back(rf);
      emit.push_back(rf);
    }
    RNode& n = res_.nodes[idx];
    n.steps = std::move(steps);
    n.defaults = std::move(defaults);
    n.inv.assign(rn.fields.size(), 0);
    for (std::uint32_t e = 0; e < emit.size(); ++e) {
      n.inv[emit[e]] = e;
      n.reorder = n.reorder || emit[e] != e;
    }
  }

  const Schema& w_;
  const Schema& r_;
  Resolution& res_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::uint32_t> memo_;
  std::vector<std::string> path_;
};

}  // namespace

std::string_view type_name(const Node& n) noexcept {
  switch (n.kind) {
    case Kind::null_: return "null";
    case Kind::boolean: return "boolean";
    case Kind::int_: return "int";
    case Kind::long_: return "long";
    case Kind::float_: return "float";
    case Kind::double_: return "double";
    case Kind::bytes: return "bytes";
    case Kind::string: return "string";
    case Kind::array: return "array";
    case Kind::map: return "map";
    case Kind::union_: return "union";
    case Kind::record:
    case Kind::enum_:
    case Kind::fixed: return n.name;
  }
  return "?";
}

std::shared_ptr<const Schema> parse(std::string_view text, const std::vector<std::string>& references) {
  auto s = std::make_shared<Schema>();
  Parser p(*s);
  for (std::size_t i = 0; i < references.size(); ++i) {
    p.parse_document(references[i], "reference " + std::to_string(i));
  }
  s->root = p.parse_document(text, "the schema");
  compute_min_sizes(*s);
  encode_defaults(*s);
  return s;
}

std::shared_ptr<const Resolution> resolve(std::shared_ptr<const Schema> writer, std::shared_ptr<const Schema> reader) {
  if (!writer || !reader) {
    throw Error(errc::misuse, "avro::resolve: null schema");
  }
  auto res = std::make_shared<Resolution>();
  Resolver r(*writer, *reader, *res);
  res->root = r.resolve(writer->root, reader->root);
  res->writer = std::move(writer);
  res->reader = std::move(reader);
  return res;
}

}  // namespace kc::schema::detail::avro
