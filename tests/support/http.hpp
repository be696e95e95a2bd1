// Plain HTTP GET for the tests of kc's metrics endpoint (libcurl, never
// kc's own code).
#pragma once

#include <chrono>
#include <string>

namespace kc::test {

struct HttpResponse {
  long status = 0;  ///< 0 when no answer came (see error)
  std::string body;
  std::string content_type;
  std::string error;  ///< libcurl's message when the request failed
};

/// GETs `url`; blocks up to `timeout`. Never throws for a network failure
/// (status 0 and `error` say it).
HttpResponse http_get(const std::string& url, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace kc::test
