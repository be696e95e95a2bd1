// The Schema Registry client over libcurl.
//
// Why one mutex around everything: the client is used on cache misses only
// (a new schema id, a serializer's construction), so contention is rare, and
// one CURL easy handle reused under the lock keeps one warm (keep-alive, TLS
// session) connection. The backoff sleep happens under the lock as well: the
// other callers would be asking the same failing registry.
//
// Why credentials are taken out of the URL: libcurl would accept them there,
// but then they are part of every string that names the URL (our messages,
// libcurl's error buffer). They go to CURLOPT_USERNAME/PASSWORD instead and
// every message is passed through redact() as a second line of defence.
//
// Why TLS certificate errors are not retried: a wrong CA or a rejected
// certificate does not heal in a few seconds; they fail at once, not
// retriable, so a misconfiguration is reported instead of retried forever.
#include <curl/curl.h>
#include <fmt/format.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <list>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "kc/error.hpp"
#include "kc/log.hpp"
#include "kc/schema.hpp"
#include "text/text.hpp"

namespace kc::schema {

// The format names (here, the lowest module of the schema support: the
// registry maps schemaType with them too).
Format parse_format(std::string_view name) {
  if (name == "avro") {
    return Format::avro;
  }
  if (name == "protobuf") {
    return Format::protobuf;
  }
  if (name == "jsonschema" || name == "json") {
    return Format::json;
  }
  throw Error(errc::config_invalid_value,
              "schema format '" + std::string(name) + "': expected avro, protobuf or jsonschema");
}

std::string_view schema_type(Format f) noexcept {
  switch (f) {
    case Format::avro: return "AVRO";
    case Format::protobuf: return "PROTOBUF";
    case Format::json: return "JSON";
  }
  return "AVRO";
}

namespace {

struct CurlDeleter {
  void operator()(CURL* c) const noexcept { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const noexcept { curl_url_cleanup(u); }
};
struct CurlStringDeleter {
  void operator()(char* s) const noexcept { curl_free(s); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;
using UrlPtr = std::unique_ptr<CURLU, UrlDeleter>;
using CurlString = std::unique_ptr<char, CurlStringDeleter>;

constexpr std::size_t kMaxAnswerBytes = 16U << 20U;    // schemas are small; a bigger answer is not a registry
constexpr std::size_t kMaxQuotedMessage = 300;         // the registry's message, in our errors
constexpr int kMaxReferenceDepth = 32;
constexpr const char* kContentType = "application/vnd.schemaregistry.v1+json";

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
      throw Error(errc::io, "libcurl: curl_global_init failed", true);
    }
  });
}

/// A small least-recently-used map. Not thread-safe (used under Impl::mu).
template <class K, class V>
class Lru {
 public:
  explicit Lru(std::size_t capacity) : capacity_(capacity) {}

  const V* get(const K& k) {
    const auto it = index_.find(k);
    if (it == index_.end()) {
      return nullptr;
    }
    order_.splice(order_.begin(), order_, it->second);
    return &it->second->second;
  }

  void put(const K& k, V v) {
    if (capacity_ == 0) {
      return;
    }
    if (const auto it = index_.find(k); it != index_.end()) {
      it->second->second = std::move(v);
      order_.splice(order_.begin(), order_, it->second);
      return;
    }
    if (order_.size() >= capacity_) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    order_.emplace_front(k, std::move(v));
    index_.emplace(k, order_.begin());
  }

 private:
  std::size_t capacity_;
  std::list<std::pair<K, V>> order_;  // most recently used first
  std::unordered_map<K, typename std::list<std::pair<K, V>>::iterator> index_;
};

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4U];
      out += kHex[c & 0xfU];
    }
  }
  return out;
}

/// One line, at most `max` bytes (control characters become spaces).
std::string one_line(std::string_view s, std::size_t max) {
  std::string out;
  for (const char ch : s.substr(0, max)) {
    out += static_cast<unsigned char>(ch) < 0x20 ? ' ' : ch;
  }
  if (s.size() > max) {
    out += "...";
  }
  return out;
}

Format format_of(std::string_view type) {
  if (type.empty() || type == "AVRO") {
    return Format::avro;
  }
  if (type == "PROTOBUF") {
    return Format::protobuf;
  }
  if (type == "JSON") {
    return Format::json;
  }
  throw Error(errc::schema_invalid, fmt::format("unknown schemaType \"{}\"", one_line(type, 40)));
}

bool retriable_curl_code(CURLcode c) noexcept {
  switch (c) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_NOT_BUILT_IN:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_WRITE_ERROR:  // our answer size limit
      return false;
    default:
      return true;
  }
}

/// The body of a schema request: {"schema", "schemaType"?, "references"?}.
std::string schema_body(const RegisteredSchema& s) {
  std::string out = "{\"schema\":\"";
  detail::append_json_escaped(out, s.text);
  out += '"';
  if (s.format != Format::avro) {
    out += ",\"schemaType\":\"";
    out += schema_type(s.format);
    out += '"';
  }
  if (!s.references.empty()) {
    out += ",\"references\":[";
    for (std::size_t i = 0; i < s.references.size(); ++i) {
      const auto& r = s.references[i];
      out += i == 0 ? "{\"name\":\"" : ",{\"name\":\"";
      detail::append_json_escaped(out, r.name);
      out += "\",\"subject\":\"";
      detail::append_json_escaped(out, r.subject);
      out += "\",\"version\":";
      out += std::to_string(r.version);
      out += '}';
    }
    out += ']';
  }
  out += '}';
  return out;
}

/// The key of a (subject, schema) pair in the id cache.
std::string schema_key(std::string_view subject, const RegisteredSchema& s) {
  std::string k;
  k.reserve(subject.size() + s.text.size() + 16);
  k.append(subject).append(1, '\0').append(schema_type(s.format)).append(1, '\0').append(s.text);
  for (const auto& r : s.references) {
    k.append(1, '\0').append(r.name).append(1, '\0').append(r.subject).append(1, '\0');
    k += std::to_string(r.version);
  }
  return k;
}

struct Response {
  long status = 0;
  std::string body;
};

}  // namespace

struct SchemaRegistry::Impl {
  RegistryConfig config;
  std::string base;     // scheme://host[:port][/prefix], no credentials, no trailing '/'
  std::string display;  // the same, for messages
  std::string user;     // basic auth, from config.basic_auth or the URL
  std::string password;
  std::vector<std::string> secrets;  // everything redact() hides

  std::atomic<std::uint64_t> requests{0};

  std::mutex mu;  // guards everything below
  // The handle uses the header lists and the error buffer: it is declared
  // after them so that it is destroyed first.
  SlistPtr get_headers;
  SlistPtr post_headers;
  char curl_error[CURL_ERROR_SIZE] = {};
  CurlPtr curl;
  std::string answer;
  bool answer_too_big = false;
  Lru<std::int32_t, std::shared_ptr<const RegisteredSchema>> by_id;
  Lru<std::string, std::shared_ptr<const RegisteredSchema>> by_version;  // subject '\0' version
  Lru<std::string, std::int32_t> ids;                                    // schema_key() -> id
  std::minstd_rand rng{std::random_device{}()};

  explicit Impl(RegistryConfig c)
      : config(std::move(c)),
        by_id(config.cache_capacity),
        by_version(config.cache_capacity),
        ids(config.cache_capacity) {
    global_init();
    parse_url();
    if (!config.basic_auth.empty()) {
      const auto colon = config.basic_auth.find(':');
      if (colon == std::string::npos) {
        throw Error(errc::config_invalid_value, "schema registry basic_auth: expected user:password");
      }
      user = config.basic_auth.substr(0, colon);
      password = config.basic_auth.substr(colon + 1);
    }
    if (!config.bearer_token.empty() && !user.empty()) {
      throw Error(errc::config_invalid_value,
                  "schema registry: basic auth and a bearer token are exclusive (choose one)");
    }
    for (const std::string* s : {&config.basic_auth, &config.bearer_token, &config.key_password, &password}) {
      if (!s->empty()) {
        secrets.push_back(*s);
        log::register_secret(*s);  // masked in every log line too, not only in ours
      }
    }
    if (config.max_retries < 0 || config.timeout.count() <= 0 || config.retry_backoff.count() < 0 ||
        config.retry_backoff_max < config.retry_backoff) {
      throw Error(errc::config_invalid_value,
                  "schema registry: timeout must be > 0, max_retries >= 0, 0 <= retry_backoff <= retry_backoff_max");
    }
    setup_curl();
  }

  /// Splits the configured URL into the base URL without credentials and the
  /// credentials (which become basic auth).
  void parse_url() {
    if (config.url.empty()) {
      throw Error(errc::config_missing, "schema registry url is empty");
    }
    UrlPtr u(curl_url());
    if (!u) {
      throw std::bad_alloc();
    }
    // Messages about a URL that does not parse must not show it: it may
    // carry a password.
    if (curl_url_set(u.get(), CURLUPART_URL, config.url.c_str(), 0) != CURLUE_OK) {
      throw Error(errc::config_invalid_value, "schema registry url does not parse (expected http[s]://host[:port][/path])");
    }
    const auto part = [&](CURLUPart p, unsigned flags) -> std::string {
      char* raw = nullptr;
      if (curl_url_get(u.get(), p, &raw, flags) != CURLUE_OK || raw == nullptr) {
        return {};
      }
      CurlString owned(raw);
      return owned.get();
    };
    const std::string scheme = part(CURLUPART_SCHEME, 0);
    if (scheme != "http" && scheme != "https") {
      throw Error(errc::config_invalid_value, "schema registry url: scheme must be http or https, not " + scheme);
    }
    user = part(CURLUPART_USER, CURLU_URLDECODE);
    password = part(CURLUPART_PASSWORD, CURLU_URLDECODE);
    if (!user.empty() && !config.basic_auth.empty()) {
      throw Error(errc::config_invalid_value,
                  "schema registry: credentials both in the url and in basic_auth (choose one)");
    }
    curl_url_set(u.get(), CURLUPART_USER, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_PASSWORD, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_QUERY, nullptr, 0);
    curl_url_set(u.get(), CURLUPART_FRAGMENT, nullptr, 0);
    base = part(CURLUPART_URL, 0);
    while (!base.empty() && base.back() == '/') {
      base.pop_back();
    }
    display = base;
  }

  void setup_curl() {
    curl.reset(curl_easy_init());
    if (!curl) {
      throw Error(errc::io, "libcurl: curl_easy_init failed", true);
    }
    CURL* c = curl.get();
    const auto append = [](SlistPtr& list, const std::string& h) {
      curl_slist* l = curl_slist_append(list.get(), h.c_str());
      if (l == nullptr) {
        throw std::bad_alloc();
      }
      (void)list.release();  // now part of l
      list.reset(l);
    };
    for (SlistPtr* list : {&get_headers, &post_headers}) {
      append(*list, std::string("Accept: ") + kContentType + ", application/json");
      if (!config.bearer_token.empty()) {
        append(*list, "Authorization: Bearer " + config.bearer_token);
      }
    }
    append(post_headers, std::string("Content-Type: ") + kContentType);
    append(post_headers, "Expect:");  // no 100-continue round trip for large schemas

    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curl_error);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect would carry the credentials elsewhere
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kc-schema-registry/0.1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(config.timeout.count()));
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(config.timeout.count()));
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Impl::on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, this);
    if (!user.empty() || !password.empty()) {
      curl_easy_setopt(c, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl_easy_setopt(c, CURLOPT_USERNAME, user.c_str());
      curl_easy_setopt(c, CURLOPT_PASSWORD, password.c_str());
    }
    if (!config.ca_file.empty()) {
      curl_easy_setopt(c, CURLOPT_CAINFO, config.ca_file.c_str());
    }
    if (!config.cert_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLCERT, config.cert_file.c_str());
    }
    if (!config.key_file.empty()) {
      curl_easy_setopt(c, CURLOPT_SSLKEY, config.key_file.c_str());
    }
    if (!config.key_password.empty()) {
      curl_easy_setopt(c, CURLOPT_KEYPASSWD, config.key_password.c_str());
    }
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, config.verify_tls ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, config.verify_tls ? 2L : 0L);
  }

  static std::size_t on_data(char* data, std::size_t size, std::size_t n, void* self) noexcept {
    auto* impl = static_cast<Impl*>(self);
    const std::size_t bytes = size * n;
    if (impl->answer.size() + bytes > kMaxAnswerBytes) {
      impl->answer_too_big = true;
      return 0;  // aborts the transfer (CURLE_WRITE_ERROR)
    }
    try {
      impl->answer.append(data, bytes);
    } catch (...) {
      return 0;
    }
    return bytes;
  }

  /// `s` with every secret replaced by "***".
  std::string redact(std::string s) const {
    for (const auto& secret : secrets) {
      for (auto pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos + 3)) {
        s.replace(pos, secret.size(), "***");
      }
    }
    return s;
  }

  [[noreturn]] void fail(errc code, const std::string& method, const std::string& path, const std::string& what,
                         bool retriable = false) const {
    throw Error(code, redact(fmt::format("schema registry {}: {} {}: {}", display, method, path, what)), false,
                retriable);
  }

  /// "404 (error_code 40403: Schema not found)" from an error answer.
  static std::string describe_error(long status, const std::string& body, std::int64_t* error_code) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    std::string detail;
    if (!body.empty() && parser.parse(body).get(doc) == simdjson::SUCCESS && doc.is_object()) {
      std::int64_t code = 0;
      std::string_view message;
      const bool has_code = doc["error_code"].get(code) == simdjson::SUCCESS;
      const bool has_message = doc["message"].get(message) == simdjson::SUCCESS;
      if (has_code && error_code != nullptr) {
        *error_code = code;
      }
      if (has_code || has_message) {
        detail = fmt::format(" (error_code {}: {})", has_code ? std::to_string(code) : "?",
                             one_line(message, kMaxQuotedMessage));
      }
    } else if (!body.empty()) {
      detail = " (" + one_line(body, kMaxQuotedMessage / 3) + ")";
    }
    return fmt::format("HTTP {}{}", status, detail);
  }

  /// Sends one request, retrying as configured. Returns a 2xx answer, or
  /// throws. Call with `mu` held. Sets `error_code` (when non-null) to the
  /// registry's error_code on a 404 before throwing registry_not_found.
  Response send(const char* method, const std::string& path, const std::string* body,
                std::int64_t* error_code = nullptr) {
    CURL* c = curl.get();
    const std::string url = base + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    if (body != nullptr) {
      curl_easy_setopt(c, CURLOPT_POST, 1L);
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, post_headers.get());
    } else {
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(c, CURLOPT_HTTPHEADER, get_headers.get());
    }
    auto backoff = config.retry_backoff;
    std::string last;
    for (int attempt = 0;; ++attempt) {
      answer.clear();
      answer_too_big = false;
      curl_error[0] = '\0';
      const CURLcode rc = curl_easy_perform(c);
      long sent = 0;
      curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
      if (sent > 0) {
        requests.fetch_add(1, std::memory_order_relaxed);
      }
      bool retriable = true;
      if (rc != CURLE_OK) {
        if (answer_too_big) {
          fail(errc::schema_invalid, method, path, fmt::format("answer larger than {} bytes", kMaxAnswerBytes));
        }
        last = curl_error[0] != '\0' ? std::string(curl_error) : std::string(curl_easy_strerror(rc));
        last = one_line(last, kMaxQuotedMessage);
        retriable = retriable_curl_code(rc);
        if (!retriable) {
          fail(errc::registry_unavailable, method, path, last);
        }
      } else {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
          return Response{status, std::move(answer)};
        }
        if (status == 404) {
          fail_not_found(method, path, status, error_code);
        }
        if (status < 500 && status != 429) {
          fail(errc::registry_rejected, method, path, describe_error(status, answer, nullptr));
        }
        last = describe_error(status, answer, nullptr);
      }
      if (attempt >= config.max_retries) {
        fail(errc::registry_unavailable, method, path,
             fmt::format("{} (after {} attempt{})", last, attempt + 1, attempt == 0 ? "" : "s"), true);
      }
      // Equal jitter: half the backoff fixed, half random, so that clients
      // restarted together do not retry together.
      const auto half = backoff.count() / 2;
      const auto wait = std::chrono::milliseconds(
          half + std::uniform_int_distribution<std::int64_t>(0, std::max<std::int64_t>(backoff.count() - half, 0))(rng));
      spdlog::warn("{}", redact(fmt::format("schema registry {}: {} {}: {}; retry {}/{} in {} ms", display, method,
                                            path, last, attempt + 1, config.max_retries, wait.count())));
      std::this_thread::sleep_for(wait);
      backoff = std::min(backoff * 2, config.retry_backoff_max);
    }
  }

  [[noreturn]] void fail_not_found(const char* method, const std::string& path, long status,
                                   std::int64_t* error_code) {
    std::int64_t code = 0;
    const auto what = describe_error(status, answer, &code);
    if (error_code != nullptr) {
      *error_code = code;
    }
    fail(errc::registry_not_found, method, path, what);
  }

  /// Parses a schema answer ({"schema", "schemaType"?, "references"?, "id"?,
  /// "subject"?, "version"?}).
  std::shared_ptr<RegisteredSchema> parse_schema(const char* method, const std::string& path,
                                                  const std::string& body) const {
    try {
      simdjson::dom::parser parser;
      const simdjson::dom::object doc = parser.parse(body).get_object();
      auto s = std::make_shared<RegisteredSchema>();
      s->text = std::string(std::string_view(doc["schema"]));
      std::string_view type;
      if (doc["schemaType"].get(type) == simdjson::SUCCESS) {
        s->format = format_of(type);
      }
      std::int64_t n = 0;
      if (doc["id"].get(n) == simdjson::SUCCESS) {
        s->id = checked_id(n);
      }
      std::string_view subject;
      if (doc["subject"].get(subject) == simdjson::SUCCESS) {
        s->subject = std::string(subject);
      }
      if (doc["version"].get(n) == simdjson::SUCCESS) {
        s->version = static_cast<int>(std::clamp<std::int64_t>(n, 0, INT32_MAX));
      }
      simdjson::dom::array refs;
      if (doc["references"].get(refs) == simdjson::SUCCESS) {
        for (const simdjson::dom::object r : refs) {
          SchemaReference ref;
          ref.name = std::string(std::string_view(r["name"]));
          ref.subject = std::string(std::string_view(r["subject"]));
          ref.version = static_cast<int>(std::clamp<std::int64_t>(std::int64_t(r["version"]), INT32_MIN, INT32_MAX));
          s->references.push_back(std::move(ref));
        }
      }
      return s;
    } catch (const simdjson::simdjson_error& e) {
      fail(errc::schema_invalid, method, path, std::string("answer is not a schema: ") + e.what());
    } catch (const Error& e) {
      fail(errc::schema_invalid, method, path, std::string("answer is not a schema: ") + e.what());
    }
  }

  static std::int32_t checked_id(std::int64_t n) {
    if (n < 0 || n > INT32_MAX) {
      throw Error(errc::schema_invalid, fmt::format("schema id {} out of range", n));
    }
    return static_cast<std::int32_t>(n);
  }

  std::int32_t parse_id(const char* method, const std::string& path, const std::string& body) const {
    try {
      simdjson::dom::parser parser;
      return checked_id(std::int64_t(parser.parse(body)["id"]));
    } catch (const simdjson::simdjson_error& e) {
      fail(errc::schema_invalid, method, path, std::string("answer has no schema id: ") + e.what());
    } catch (const Error& e) {
      fail(errc::schema_invalid, method, path, e.what());
    }
  }
};

SchemaRegistry::SchemaRegistry(RegistryConfig config) : impl_(std::make_unique<Impl>(std::move(config))) {}

SchemaRegistry::~SchemaRegistry() = default;

std::shared_ptr<const RegisteredSchema> SchemaRegistry::schema_by_id(std::int32_t id) {
  auto& m = *impl_;
  std::lock_guard lock(m.mu);
  if (const auto* hit = m.by_id.get(id)) {
    return *hit;
  }
  const std::string path = fmt::format("/schemas/ids/{}", id);
  const auto r = m.send("GET", path, nullptr);
  auto s = m.parse_schema("GET", path, r.body);
  s->id = id;
  s->subject.clear();
  s->version = 0;
  std::shared_ptr<const RegisteredSchema> out = std::move(s);
  m.by_id.put(id, out);
  return out;
}

std::shared_ptr<const RegisteredSchema> SchemaRegistry::schema_by_version(std::string_view subject, int version) {
  auto& m = *impl_;
  if (version < 1 && version != -1) {
    throw Error(errc::misuse, fmt::format("schema registry: version {} (expected >= 1, or -1 for the latest)", version));
  }
  std::string key;
  if (version != -1) {
    key.append(subject).append(1, '\0') += std::to_string(version);
  }
  std::lock_guard lock(m.mu);
  if (!key.empty()) {
    if (const auto* hit = m.by_version.get(key)) {
      return *hit;
    }
  }
  const std::string path = "/subjects/" + percent_encode(subject) + "/versions/" +
                           (version == -1 ? std::string("latest") : std::to_string(version));
  const auto r = m.send("GET", path, nullptr);
  auto s = m.parse_schema("GET", path, r.body);
  if (s->subject.empty()) {
    s->subject = std::string(subject);
  }
  if (s->version == 0 && version != -1) {
    s->version = version;
  }
  std::shared_ptr<const RegisteredSchema> out = std::move(s);
  if (!key.empty()) {
    m.by_version.put(key, out);
  }
  return out;
}

std::vector<ResolvedReference> SchemaRegistry::resolve_references(const RegisteredSchema& s) {
  std::vector<ResolvedReference> out;
  std::unordered_set<std::string> seen;
  // Depth first, a schema after its own references; a name is marked before
  // its references are visited, so a cycle ends instead of recursing.
  const auto visit = [&](const auto& self, const RegisteredSchema& schema, int depth) -> void {
    if (depth > kMaxReferenceDepth) {
      throw Error(errc::schema_invalid,
                  fmt::format("schema references nested deeper than {} (from subject \"{}\")", kMaxReferenceDepth,
                              one_line(schema.subject, 200)));
    }
    for (const auto& ref : schema.references) {
      if (!seen.insert(ref.name).second) {
        continue;
      }
      auto dep = schema_by_version(ref.subject, ref.version);
      self(self, *dep, depth + 1);
      out.push_back(ResolvedReference{ref.name, std::move(dep)});
    }
  };
  visit(visit, s, 0);
  return out;
}

std::int32_t SchemaRegistry::register_schema(std::string_view subject, const RegisteredSchema& s) {
  auto& m = *impl_;
  const auto key = schema_key(subject, s);
  std::lock_guard lock(m.mu);
  if (const auto* hit = m.ids.get(key)) {
    return *hit;
  }
  const std::string path = "/subjects/" + percent_encode(subject) + "/versions";
  const std::string body = schema_body(s);
  const auto r = m.send("POST", path, &body);
  const auto id = m.parse_id("POST", path, r.body);
  m.ids.put(key, id);
  return id;
}

std::optional<std::int32_t> SchemaRegistry::lookup_schema(std::string_view subject, const RegisteredSchema& s) {
  auto& m = *impl_;
  const auto key = schema_key(subject, s);
  std::lock_guard lock(m.mu);
  if (const auto* hit = m.ids.get(key)) {
    return *hit;
  }
  const std::string path = "/subjects/" + percent_encode(subject);
  const std::string body = schema_body(s);
  std::int64_t error_code = 0;
  try {
    const auto r = m.send("POST", path, &body, &error_code);
    const auto id = m.parse_id("POST", path, r.body);
    m.ids.put(key, id);
    return id;
  } catch (const Error& e) {
    if (e.code() == errc::registry_not_found && (error_code == 40401 || error_code == 40403)) {
      return std::nullopt;
    }
    throw;
  }
}

std::uint64_t SchemaRegistry::requests() const noexcept { return impl_->requests.load(std::memory_order_relaxed); }

const std::string& SchemaRegistry::display_url() const noexcept { return impl_->display; }

}  // namespace kc::schema
