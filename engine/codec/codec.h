// codec: turns Kafka record values into verified events, and the documented JSON form into canonical FlatBuffers.
// Pure (no I/O); thread-safe: every function may be called from any thread.
//
//   auto ev = codec::decode(record_value, codec::Encoding::json, record_key);
//   if (!ev) dead_letter(ev.error().message);     // the reason names the field
//   else fold(ev.value());
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"

namespace statefold::schema {
struct Event;
struct SessionAmended;
}

namespace statefold::codec {

// How a record value is encoded: FlatBuffers by default, JSON when the record's `content-type` header says
// `application/json`.
enum class Encoding { flatbuffers, json };
inline constexpr std::string_view kJsonContentType = "application/json";
// The encoding a record's `content-type` header selects: json when its media type is application/json (case and
// parameters such as "; charset=utf-8" ignored), flatbuffers otherwise, including when there is no header.
Encoding encoding_for_content_type(std::optional<std::string_view> content_type);

using EventId = std::array<std::uint8_t, 16>;

// A verified event. Owns its canonical FlatBuffers bytes (for a JSON record: the bytes the schema builds from it),
// which the hash chain covers and the history stores.
class Event {
 public:
  Event(std::vector<std::uint8_t> canonical, EventId id);

  const schema::Event& root() const;
  std::span<const std::uint8_t> canonical() const { return _canonical; }
  const EventId& id() const { return _id; }
  std::string_view session_id() const;
  std::optional<std::uint64_t> expected_version() const;
  std::uint8_t payload_type() const;  // schema::Payload value; may be one this build does not know
  bool payload_known() const;

 private:
  std::vector<std::uint8_t> _canonical;
  EventId _id;
};

// Verifies and validates one record value. `kafka_key`, when the record has one, must equal the session id.
// The error message says what is wrong and where (field path, and line:column for JSON).
base::Result<Event> decode(std::span<const std::uint8_t> value, Encoding encoding,
                           std::optional<std::string_view> kafka_key = std::nullopt);

// The documented JSON form of one event -> canonical FlatBuffers bytes, validated exactly as decode() does.
base::Result<std::vector<std::uint8_t>> json_to_flatbuffers(std::string_view json);

// The documented JSON form of a verified event (one line, no trailing newline).
std::string to_json(const Event& event);
// Same, for raw canonical bytes known to be verified (history entries read back from the store).
std::string flatbuffers_to_json(std::span<const std::uint8_t> canonical);

// The event with its personal content removed (docs/erasure.md): message text and tool call arguments, memory
// values, summary text and custom data are emptied; ids, roles, labels, tool names, figures and the envelope stay.
// A payload of a type this build does not know is replaced whole by a Custom "statefold.redacted(<type>)".
std::vector<std::uint8_t> redact(std::span<const std::uint8_t> canonical);

// "0123456789abcdef0123456789abcdef" or "01234567-89ab-cdef-0123-456789abcdef" -> 16 bytes.
std::optional<EventId> parse_event_id(std::string_view text);
std::string event_id_to_string(const EventId& id);  // 32 lower-case hex digits

// Name of a payload type for display ("Message", "MemorySet", ... or "unknown(12)").
std::string payload_type_name(std::uint8_t type);

// The versions a SessionAmended withdraws, read one by one without assuming alignment: an event read back from its
// history entry (nested there) or straight from a Kafka record need not sit on an 8-byte boundary in memory, and
// FlatBuffers' vector accessors load 8-byte elements as if it did.
std::vector<std::uint64_t> withdraw_versions(const schema::SessionAmended& amended);

}  // namespace statefold::codec
