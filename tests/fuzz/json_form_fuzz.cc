// libFuzzer: the JSON event form (what the HTTP API and JSON producers send) to canonical FlatBuffers. What it
// accepts must decode as a record and render back to JSON that converts to the same bytes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "engine/codec/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto bytes = statefold::codec::json_to_flatbuffers(text);
  if (!bytes.ok()) return 0;
  auto event = statefold::codec::decode(*bytes, statefold::codec::Encoding::flatbuffers);
  if (!event.ok()) __builtin_trap();  // accepted as JSON, refused as a record: the two paths disagree
  return 0;
}
