// Internal to codec: the JSON form of events through the FlatBuffers parser built from the embedded events.fbs.
// Thread-safe: each thread owns one parser, built from the schema text on first use.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"

namespace statefold::codec::internal {

// JSON text -> FlatBuffers bytes finished with the "SFE1" identifier, not yet validated. On failure the message
// names the field path (when the text shows one), the parser's problem and its line:column.
base::Result<std::vector<std::uint8_t>> parse_json(std::string_view text);

// Verified canonical bytes -> one line of JSON. With payload_known false the payload table is left out: only its
// type number shows, as "payload_type": 12.
std::string render_json(std::span<const std::uint8_t> canonical, bool payload_known);

// The message for a parser error about `text`: "1: 151: error: unknown field: bogus" becomes
// "payload.bogus: unknown field (at 1:151)", the path read off the text up to the parser's position.
std::string json_error_message(std::string_view text, std::string_view parser_error);

}  // namespace statefold::codec::internal
