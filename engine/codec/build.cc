#include "engine/codec/build.h"

#include <type_traits>
#include <utility>

#include <flatbuffers/flatbuffers.h>

#include "engine/codec/internal/validate.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {

namespace {

namespace fb = flatbuffers;
namespace sch = statefold::schema;

// The layout rule, mirrored from flatbuffers::Parser::ParseTable (2.0.8), which the JSON path runs:
//  - a table's strings, vectors and sub-tables are written when the parser meets them, i.e. in the JSON's key
//    order, which for the canonical form is schema order; so each function below creates its children in schema
//    order, one statement each (the order of a call's arguments is unspecified);
//  - then the table's fields are added largest first and, for one size, highest field id first, scalars at their
//    default left out; the generated Create* functions add them in exactly that order, so they are used for that.
// build_test.cc checks the result against the parser for every payload and every optional field.

fb::Offset<fb::String> string(fb::FlatBufferBuilder& b, const std::optional<std::string>& s) {
  return s ? b.CreateString(*s) : fb::Offset<fb::String>();
}

fb::Offset<fb::Vector<fb::Offset<sch::KeyValue>>> key_values(fb::FlatBufferBuilder& b,
                                                              const std::optional<std::vector<KeyValue>>& kvs) {
  if (!kvs) return {};
  std::vector<fb::Offset<sch::KeyValue>> pairs;
  pairs.reserve(kvs->size());
  for (const auto& kv : *kvs) {
    const auto key = b.CreateString(kv.key);
    const auto value = string(b, kv.value);
    pairs.push_back(sch::CreateKeyValue(b, key, value));
  }
  return b.CreateVector(pairs);
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const SessionOpened& p) {
  const auto model = string(b, p.model);
  const auto system_prompt = string(b, p.system_prompt);
  fb::Offset<sch::ContextPolicy> policy;
  if (p.policy) {
    const auto tokenizer = string(b, p.policy->tokenizer);
    const auto provider = string(b, p.policy->provider);
    policy = sch::CreateContextPolicy(b, p.policy->token_budget, p.policy->output_reserve, tokenizer, provider);
  }
  const auto metadata = key_values(b, p.metadata);
  const auto parent = string(b, p.parent_session_id);
  return sch::CreateSessionOpened(b, model, system_prompt, policy, metadata, parent, p.parent_version).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const Message& p) {
  fb::Offset<fb::Vector<fb::Offset<sch::ContentPart>>> content;
  if (p.content) {
    std::vector<fb::Offset<sch::ContentPart>> parts;
    parts.reserve(p.content->size());
    for (const auto& part : *p.content) {
      const auto text = string(b, part.text);
      const auto media_type = string(b, part.media_type);
      parts.push_back(sch::CreateContentPart(b, static_cast<sch::ContentKind>(part.kind), text, media_type));
    }
    content = b.CreateVector(parts);
  }
  fb::Offset<fb::Vector<fb::Offset<sch::ToolCall>>> tool_calls;
  if (p.tool_calls) {
    std::vector<fb::Offset<sch::ToolCall>> calls;
    calls.reserve(p.tool_calls->size());
    for (const auto& call : *p.tool_calls) {
      const auto id = b.CreateString(call.id);
      const auto name = b.CreateString(call.name);
      const auto arguments = string(b, call.arguments);
      calls.push_back(sch::CreateToolCall(b, id, name, arguments));
    }
    tool_calls = b.CreateVector(calls);
  }
  const auto tool_call_id = string(b, p.tool_call_id);
  const auto name = string(b, p.name);
  return sch::CreateMessage(b, static_cast<sch::Role>(p.role), content, tool_calls, tool_call_id, name).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const MemorySet& p) {
  const auto label = b.CreateString(p.label);
  const auto value = string(b, p.value);
  return sch::CreateMemorySet(b, label, value, p.pinned).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const MemoryDelete& p) {
  return sch::CreateMemoryDelete(b, b.CreateString(p.label)).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const Summary& p) {
  return sch::CreateSummary(b, string(b, p.text), p.through_version).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const InferenceReceipt& p) {
  const auto request_hash = string(b, p.request_hash);
  const auto provider = string(b, p.provider);
  const auto endpoint = string(b, p.endpoint);
  const auto model = string(b, p.model);
  fb::Offset<sch::Usage> usage;
  if (p.usage) usage = sch::CreateUsage(b, p.usage->input_tokens, p.usage->output_tokens, p.usage->cached_tokens);
  const auto error = string(b, p.error);
  const auto render = string(b, p.render);
  const auto caller = string(b, p.caller);
  return sch::CreateInferenceReceipt(b, request_hash, p.state_version, provider, endpoint, model, usage,
                                     p.latency_ms, p.status, error, render, caller)
      .Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const SessionClosed& p) {
  return sch::CreateSessionClosed(b, string(b, p.reason)).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const ErasureRequest& p) {
  const auto reason = string(b, p.reason);
  const auto requested_by = string(b, p.requested_by);
  return sch::CreateErasureRequest(b, reason, requested_by).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const Custom& p) {
  const auto type_name = b.CreateString(p.type_name);
  fb::Offset<fb::Vector<std::uint8_t>> data;
  if (p.data) data = b.CreateVector(p.data->data(), p.data->size());
  return sch::CreateCustom(b, type_name, data).Union();
}

fb::Offset<void> write(fb::FlatBufferBuilder& b, const SessionAmended& p) {
  const auto metadata = key_values(b, p.metadata);
  fb::Offset<fb::Vector<std::uint64_t>> withdraw;
  if (p.withdraw_versions) withdraw = b.CreateVector(*p.withdraw_versions);
  const auto reason = string(b, p.reason);
  return sch::CreateSessionAmended(b, metadata, withdraw, reason).Union();
}

template <typename T, std::size_t I = 0>
constexpr std::size_t index_of() {
  if constexpr (std::is_same_v<T, std::variant_alternative_t<I, Payload>>) {
    return I;
  } else {
    return index_of<T, I + 1>();
  }
}

// The variant mirrors the union: a schema change that reorders one without the other fails to compile.
static_assert(index_of<SessionOpened>() + 1 == static_cast<std::size_t>(sch::Payload::SessionOpened));
static_assert(index_of<Message>() + 1 == static_cast<std::size_t>(sch::Payload::Message));
static_assert(index_of<MemorySet>() + 1 == static_cast<std::size_t>(sch::Payload::MemorySet));
static_assert(index_of<MemoryDelete>() + 1 == static_cast<std::size_t>(sch::Payload::MemoryDelete));
static_assert(index_of<Summary>() + 1 == static_cast<std::size_t>(sch::Payload::Summary));
static_assert(index_of<InferenceReceipt>() + 1 == static_cast<std::size_t>(sch::Payload::InferenceReceipt));
static_assert(index_of<SessionClosed>() + 1 == static_cast<std::size_t>(sch::Payload::SessionClosed));
static_assert(index_of<ErasureRequest>() + 1 == static_cast<std::size_t>(sch::Payload::ErasureRequest));
static_assert(index_of<Custom>() + 1 == static_cast<std::size_t>(sch::Payload::Custom));
static_assert(index_of<SessionAmended>() + 1 == static_cast<std::size_t>(sch::Payload::SessionAmended));
static_assert(std::variant_size_v<Payload> == static_cast<std::size_t>(sch::Payload::MAX));
static_assert(static_cast<int>(Role::tool) == static_cast<int>(sch::Role::tool));
static_assert(static_cast<int>(ContentKind::json) == static_cast<int>(sch::ContentKind::json));

std::size_t text_size(const std::optional<std::string>& s) { return s ? s->size() + 8 : 0; }

// A first guess at the buffer's size, so a large message is written without the builder growing several times.
std::size_t size_hint(const Envelope& e, const Payload& payload) {
  std::size_t n = 256 + e.event_id.size() + e.session_id.size() + text_size(e.source) + text_size(e.correlation_id) +
                  text_size(e.causation_id) + text_size(e.expected_previous_event_id);
  if (const auto* m = std::get_if<Message>(&payload)) {
    if (m->content) {
      for (const auto& part : *m->content) n += 32 + text_size(part.text) + text_size(part.media_type);
    }
    if (m->tool_calls) {
      for (const auto& c : *m->tool_calls) n += 48 + c.id.size() + c.name.size() + text_size(c.arguments);
    }
  } else if (const auto* r = std::get_if<InferenceReceipt>(&payload)) {
    n += text_size(r->render) + text_size(r->error);
  } else if (const auto* o = std::get_if<SessionOpened>(&payload)) {
    n += text_size(o->system_prompt);
  }
  return n;
}

}  // namespace

base::Result<std::vector<std::uint8_t>> build(const Envelope& envelope, const Payload& payload) {
  // The one string validate.cc does not check (the FlatBuffers path has always accepted it unchecked, and tightening
  // decode() would refuse events already folded). The JSON parser refuses it, so build() does too.
  if (const auto* receipt = std::get_if<InferenceReceipt>(&payload)) {
    if (receipt->render && !internal::is_utf8(*receipt->render)) {
      return base::make_error("payload.render: not valid UTF-8");
    }
  }

  fb::FlatBufferBuilder b(size_hint(envelope, payload));
  const auto event_id = b.CreateString(envelope.event_id);
  const auto session_id = b.CreateString(envelope.session_id);
  const auto source = string(b, envelope.source);
  const auto correlation_id = string(b, envelope.correlation_id);
  const auto causation_id = string(b, envelope.causation_id);
  const auto body = std::visit([&b](const auto& p) { return write(b, p); }, payload);
  const auto type = static_cast<sch::Payload>(payload.index() + 1);
  const auto previous = string(b, envelope.expected_previous_event_id);
  fb::Optional<std::uint64_t> expected = fb::nullopt;
  if (envelope.expected_version) expected = *envelope.expected_version;
  const auto root = sch::CreateEvent(b, event_id, session_id, expected, envelope.occurred_at_us, source,
                                     correlation_id, causation_id, type, body, previous);
  sch::FinishEventBuffer(b, root);

  std::vector<std::uint8_t> bytes(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
  auto id = internal::check_event(bytes, std::nullopt);
  if (!id) return id.error();
  return bytes;
}

}  // namespace statefold::codec
