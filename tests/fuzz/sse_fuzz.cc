// libFuzzer: the Server-Sent Events parser of upstream replies, fed the input in two pieces split where the first
// byte says (a stream arrives in arbitrary chunks).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "connectors/upstream/sse.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = all.empty() ? 0 : data[0] % (all.size() + 1);
  statefold::upstream::SseParser parser;
  std::size_t seen = 0;
  const auto on_event = [&](const statefold::upstream::SseEvent& e) {
    seen += e.data.size() + e.event.size();
    return true;
  };
  if (parser.feed(all.substr(0, cut), on_event)) parser.feed(all.substr(cut), on_event);
  (void)parser.clean_end();
  return 0;
}
