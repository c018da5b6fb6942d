// json_to_flatbuffers with envelope defaults: the fields the client's JSON lacks are added after its own, in the
// order the HTTP API always added them (boost::json appends new keys), because the FlatBuffers parser lays an
// object out in the order it meets the keys: any other placement would change the canonical bytes of API appends.
#include <boost/json.hpp>

#include <string>

#include "engine/codec/build.h"
#include "engine/codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {

namespace json = boost::json;

base::Result<EncodedEvent> json_to_flatbuffers(std::string_view text, const EnvelopeDefaults& defaults) {
  json::error_code ec;
  json::value value = json::parse(text, ec);
  std::string completed;
  // Anything but an object is left to the parser below, which reports it with its position.
  if (!ec && value.is_object()) {
    json::object& event = value.as_object();
    if (const auto* sid = event.if_contains("session_id")) {
      if (!sid->is_string() || sid->as_string() != defaults.session_id) {
        return base::make_error(base::ErrorCode::invalid_argument,
                                "session_id: does not match the session in the path (" + defaults.session_id + ")");
      }
    } else {
      event["session_id"] = defaults.session_id;
    }
    if (!event.contains("event_id")) event["event_id"] = defaults.event_id;
    if (defaults.expected_version && !event.contains("expected_version")) {
      event["expected_version"] = *defaults.expected_version;
    }
    if (defaults.expected_previous_event_id && !event.contains("expected_previous_event_id")) {
      event["expected_previous_event_id"] = *defaults.expected_previous_event_id;
    }
    if (!event.contains("occurred_at_us")) event["occurred_at_us"] = defaults.occurred_at_us;
    if (!event.contains("source")) event["source"] = defaults.source;
    completed = json::serialize(event);
    text = completed;
  }
  auto bytes = json_to_flatbuffers(text);
  if (!bytes) return bytes.error();
  const auto* event_id = schema::GetEvent(bytes->data())->event_id();  // required: verified above
  std::string id(event_id->string_view());
  return EncodedEvent{std::move(bytes).value(), std::move(id)};
}

}  // namespace statefold::codec
