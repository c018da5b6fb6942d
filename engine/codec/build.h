// codec/build.h: statefold's own events as plain C++ values, written straight to canonical FlatBuffers (no JSON
// text in between), and client JSON whose envelope the server fills in. Pure; thread-safe.
//
//   codec::Message m{.role = codec::Role::user, .content = std::vector<codec::ContentPart>{{.text = "Hi"}}};
//   auto bytes = codec::build({.event_id = id, .session_id = "chat-42", .occurred_at_us = now, .source = "gateway"}, m);
//   if (!bytes) return bad(bytes.error().message);  // names the field, as decode() would
//
// The bytes are exactly those json_to_flatbuffers gives for the same event written in schema order (the order
// to_json writes and docs/events.md "Canonical bytes" recommends), and build() accepts exactly what that JSON path
// accepts. Absent and empty differ in the schema and therefore in the canonical bytes: an unset std::optional is
// left out, a set one is written even when empty ("" or [] in the JSON form). Scalars at their schema default are
// never written, in either path. Every member has an initializer so that designated initializers may leave any out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/base/result.h"

namespace statefold::codec {

struct Envelope {
  std::string event_id{};  // 32 hex digits or a UUID
  std::string session_id{};
  std::optional<std::uint64_t> expected_version{};  // 0 is a condition too ("the session is new")
  std::int64_t occurred_at_us = 0;
  std::optional<std::string> source{};
  std::optional<std::string> correlation_id{};
  std::optional<std::string> causation_id{};
  std::optional<std::string> expected_previous_event_id{};
};

// Same numbering as schemas/events.fbs.
enum class Role : std::uint8_t { system = 0, developer = 1, user = 2, assistant = 3, tool = 4 };
enum class ContentKind : std::uint8_t { text = 0, image_url = 1, file_ref = 2, json = 3 };

struct ContentPart {
  ContentKind kind = ContentKind::text;
  std::optional<std::string> text{};
  std::optional<std::string> media_type{};
};

struct ToolCall {
  std::string id{};  // required by the schema, so always written
  std::string name{};
  std::optional<std::string> arguments{};
};

struct KeyValue {
  std::string key{};
  std::optional<std::string> value{};
};

struct ContextPolicy {
  std::uint32_t token_budget = 0;
  std::uint32_t output_reserve = 0;
  std::optional<std::string> tokenizer{};
  std::optional<std::string> provider{};
};

struct SessionOpened {
  std::optional<std::string> model{};
  std::optional<std::string> system_prompt{};
  std::optional<ContextPolicy> policy{};
  std::optional<std::vector<KeyValue>> metadata{};
  std::optional<std::string> parent_session_id{};
  std::uint64_t parent_version = 0;
};

struct Message {
  Role role = Role::user;
  std::optional<std::vector<ContentPart>> content{};
  std::optional<std::vector<ToolCall>> tool_calls{};
  std::optional<std::string> tool_call_id{};
  std::optional<std::string> name{};
};

struct MemorySet {
  std::string label{};
  std::optional<std::string> value{};
  bool pinned = false;
};

struct MemoryDelete {
  std::string label{};
};

struct Summary {
  std::optional<std::string> text{};
  std::uint64_t through_version = 0;
};

struct Usage {
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint64_t cached_tokens = 0;
};

struct InferenceReceipt {
  std::optional<std::string> request_hash{};
  std::uint64_t state_version = 0;
  std::optional<std::string> provider{};
  std::optional<std::string> endpoint{};
  std::optional<std::string> model{};
  std::optional<Usage> usage{};
  std::uint32_t latency_ms = 0;
  std::uint16_t status = 0;
  std::optional<std::string> error{};
  std::optional<std::string> render{};
  std::optional<std::string> caller{};
};

struct SessionClosed {
  std::optional<std::string> reason{};
};

struct ErasureRequest {
  std::optional<std::string> reason{};
  std::optional<std::string> requested_by{};
};

struct Custom {
  std::string type_name{};
  std::optional<std::vector<std::uint8_t>> data{};
};

struct SessionAmended {
  std::optional<std::vector<KeyValue>> metadata{};  // present (even empty): replaces the session's metadata
  std::optional<std::vector<std::uint64_t>> withdraw_versions{};
  std::optional<std::string> reason{};
};

// The alternatives follow the schema's union order, so index() + 1 is the schema::Payload value.
using Payload = std::variant<SessionOpened, Message, MemorySet, MemoryDelete, Summary, InferenceReceipt,
                             SessionClosed, ErasureRequest, Custom, SessionAmended>;

// The event's canonical FlatBuffers bytes, validated as decode() validates (the error names the field, e.g.
// "payload.tool_call_id: required when role is tool"); a string that is not UTF-8 is refused, as the JSON path does.
[[nodiscard]] base::Result<std::vector<std::uint8_t>> build(const Envelope& envelope, const Payload& payload);

// Envelope fields for JSON that leaves them out: the HTTP API takes the session from its path and the ids and the
// clock from the server. A field the JSON has is kept as written; the others are added as the API added them to
// the JSON object before (after the client's fields, in this order), so the canonical bytes do not change.
struct EnvelopeDefaults {
  std::string session_id{};  // the JSON's own session_id, if any, must be this string
  std::string event_id{};
  std::optional<std::uint64_t> expected_version{};
  std::optional<std::string> expected_previous_event_id{};
  std::int64_t occurred_at_us = 0;
  std::string source{};
};

struct EncodedEvent {
  std::vector<std::uint8_t> canonical{};
  std::string event_id{};  // as the event carries it: the JSON's own or the default
};

// One event object in the documented JSON form, its missing envelope fields taken from `defaults`, -> canonical
// FlatBuffers, validated exactly as decode() does. A session_id that is not `defaults.session_id` is refused with
// "session_id: does not match the session in the path (<session>)", before anything else is checked.
[[nodiscard]] base::Result<EncodedEvent> json_to_flatbuffers(std::string_view json, const EnvelopeDefaults& defaults);

}  // namespace statefold::codec
