// Internal to codec: verification of canonical FlatBuffers bytes and the event rules of docs/events.md, shared by
// the FlatBuffers and the JSON paths so both accept exactly the same events. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "engine/base/result.h"
#include "engine/codec/codec.h"

namespace statefold::codec::internal {

inline constexpr std::size_t kMaxSessionIdBytes = 256;
// Bounds for the FlatBuffers Verifier: the schema nests 3 tables deep today; a record never holds this many tables.
inline constexpr std::uint32_t kMaxVerifyDepth = 16;
inline constexpr std::uint32_t kMaxVerifyTables = 200'000;

// Identifier "SFE1", the bounded Verifier, then the rules; on success the event's 16-byte id. `bytes.data()` must be
// 8-byte aligned (a std::vector's storage is). The error names the field path and the problem.
base::Result<EventId> check_event(std::span<const std::uint8_t> bytes, std::optional<std::string_view> kafka_key);

// Identifier and Verifier only (no rules): for bytes read back from the store.
std::optional<std::string> verify_structure(std::span<const std::uint8_t> bytes);

// Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool is_utf8(std::string_view text);

// `text` quoted for an error message: JSON-style escapes, bytes that are not UTF-8 as \xNN, at most 64 bytes shown.
std::string quoted(std::string_view text);

}  // namespace statefold::codec::internal
