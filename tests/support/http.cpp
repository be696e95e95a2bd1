#include "support/http.hpp"

#include <curl/curl.h>

#include <memory>

namespace kc::test {

HttpResponse http_get(const std::string& url, std::chrono::milliseconds timeout) {
  HttpResponse r;
  const std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), &curl_easy_cleanup);
  if (!c) {
    r.error = "cannot set up libcurl";
    return r;
  }
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(
      c.get(), CURLOPT_WRITEFUNCTION, +[](char* d, std::size_t s, std::size_t n, void* o) {
        static_cast<std::string*>(o)->append(d, s * n);
        return s * n;
      });
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
  if (const auto rc = curl_easy_perform(c.get()); rc != CURLE_OK) {
    r.error = curl_easy_strerror(rc);
    return r;
  }
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
  char* type = nullptr;
  if (curl_easy_getinfo(c.get(), CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != nullptr) {
    r.content_type = type;
  }
  return r;
}

}  // namespace kc::test
