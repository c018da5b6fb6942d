// libFuzzer: the HTTP request reader of serve's listener (issue 9), through http::parse_request, which reads bytes by
// the server's own rules (Beast's parser with the server's limits, target and query decoding, header names). Every
// input must give a Request or the server's own answer (400, 413, 431) or none, never a crash; and a Request's
// decoded path never holds NUL (routes compare it), and a body never exceeds the limit.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/http/http.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kMaxBody = 4096;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const auto parsed = statefold::http::parse_request(bytes, kMaxBody);
  if (parsed.request) {
    if (parsed.request->path.find('\0') != std::string_view::npos) std::abort();
    if (parsed.request->body.size() > kMaxBody) std::abort();
    if (parsed.consumed > size) std::abort();
    for (const auto& [name, value] : parsed.request->headers) {
      for (char c : name) {
        if (c >= 'A' && c <= 'Z') std::abort();  // names are lower-cased for Request::header
      }
    }
  } else if (parsed.status != 0 && parsed.status != 400 && parsed.status != 413 && parsed.status != 431) {
    std::abort();
  }
  return 0;
}
