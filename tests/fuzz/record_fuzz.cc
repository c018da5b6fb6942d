// libFuzzer: a Kafka record value through the decode the engine runs on every record (FlatBuffers verify and
// validation, or the JSON form when the first byte says so). Any input: an Event or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "engine/codec/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using statefold::codec::Encoding;
  const std::span<const std::uint8_t> value(data, size);
  // The first byte picks the encoding and whether a key comes along, so one corpus drives every path.
  const Encoding encoding = size > 0 && data[0] == '{' ? Encoding::json : Encoding::flatbuffers;
  auto event = statefold::codec::decode(value, encoding);
  if (event.ok()) {
    // A decoded event re-decodes to itself with its own session id as the key.
    auto again = statefold::codec::decode(event->canonical(), Encoding::flatbuffers, event->session_id());
    if (!again.ok()) __builtin_trap();
  }
  return 0;
}
