#include <flatbuffers/flatbuffers.h>

#include "engine/codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {

std::vector<std::uint8_t> redact(std::span<const std::uint8_t> canonical) {
  schema::EventT event;
  schema::GetEvent(canonical.data())->UnPackTo(&event);
  auto& payload = event.payload;
  switch (payload.type) {
    case schema::Payload::Message: {
      auto* m = payload.AsMessage();
      for (auto& part : m->content) part->text.clear();
      for (auto& call : m->tool_calls) call->arguments.clear();
      break;
    }
    case schema::Payload::MemorySet:
      payload.AsMemorySet()->value.clear();
      break;
    case schema::Payload::Summary:
      payload.AsSummary()->text.clear();
      break;
    case schema::Payload::Custom:
      payload.AsCustom()->data.clear();
      break;
    case schema::Payload::SessionAmended:
      // Metadata values are the application's text; keys and withdrawn versions are structure.
      for (auto& kv : payload.AsSessionAmended()->metadata) kv->value.clear();
      break;
    case schema::Payload::SessionOpened:
    case schema::Payload::MemoryDelete:
    case schema::Payload::InferenceReceipt:
    case schema::Payload::SessionClosed:
    case schema::Payload::ErasureRequest:
      break;  // configuration, labels and figures: structure, not personal content
    default: {
      // A payload type this build does not know: its fields cannot be told apart, so all of it goes.
      schema::CustomT placeholder;
      placeholder.type_name = "statefold.redacted(" + std::to_string(static_cast<unsigned>(payload.type)) + ")";
      payload.Set(std::move(placeholder));
      break;
    }
  }
  flatbuffers::FlatBufferBuilder builder(canonical.size());
  schema::FinishEventBuffer(builder, schema::Event::Pack(builder, &event));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

}  // namespace statefold::codec
