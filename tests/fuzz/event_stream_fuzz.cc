// libFuzzer: the AWS binary event-stream decoder (Bedrock ConverseStream replies): prelude and message CRCs,
// header types and lengths, fed in two pieces.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "connectors/upstream/event_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view all(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t cut = all.empty() ? 0 : data[0] % (all.size() + 1);
  statefold::upstream::EventStreamDecoder decoder;
  const auto on_message = [](const statefold::upstream::EventStreamMessage&) { return true; };
  auto first = decoder.feed(all.substr(0, cut), on_message);
  if (first.ok() && *first) (void)decoder.feed(all.substr(cut), on_message);
  return 0;
}
