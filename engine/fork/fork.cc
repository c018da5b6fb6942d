#include "engine/fork/fork.h"

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "engine/fold/as_of.h"
#include "engine/fold/fold.h"
#include "engine/fold/read.h"
#include "statefold/schema/events_generated.h"
#include "statefold/schema/state_generated.h"

namespace statefold::fork {

namespace {

std::string child_event_id(std::string_view child, std::string_view parent_event_id) {
  auto digest = base::Sha256().update_framed("statefold.fork").update_framed(child).update_framed(parent_event_id).finish();
  return base::to_hex(std::span<const std::uint8_t>(digest.data(), 16));
}

std::vector<std::uint8_t> finish(schema::EventT& event) {
  flatbuffers::FlatBufferBuilder builder(512);
  schema::FinishEventBuffer(builder, schema::Event::Pack(builder, &event));
  return {builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize()};
}

}  // namespace

base::Result<Plan> plan(const fold::Reader& reader, const Request& request) {
  auto read_parent = fold::read_header(reader, request.parent);
  if (!read_parent) return read_parent.error();
  const auto& parent = *read_parent;
  if (!parent || !fold::begun(*parent)) return base::make_error("no session " + request.parent);
  if (parent->erased) return base::make_error("session " + request.parent + " is erased; it cannot be forked");
  if (request.child.empty() || request.child == request.parent) {
    return base::make_error("the fork needs a session id of its own");
  }
  const std::uint64_t version = request.version == 0 ? parent->version : request.version;
  auto at = fold::SessionAsOf::open(reader, request.parent, version);
  if (!at) return at.error();
  auto read_at = fold::read_header(**at, request.parent);
  if (!read_at) return read_at.error();
  const auto header = std::move(**read_at);

  Plan out;
  out.child = request.child;
  out.parent_version = version;

  // 1. The child opens with the parent's configuration at that version and names its parent.
  schema::EventT opened;
  opened.event_id = child_event_id(request.child, "opened@" + std::to_string(version));
  opened.session_id = request.child;
  opened.expected_version = 0;
  opened.occurred_at_us = request.occurred_at_us;
  opened.source = "fork";
  schema::SessionOpenedT open;
  open.model = header.model;
  open.system_prompt = header.system_prompt;
  open.policy = std::make_unique<schema::ContextPolicyT>();
  open.policy->token_budget = header.token_budget;
  open.policy->output_reserve = header.output_reserve;
  open.policy->tokenizer = header.tokenizer;
  open.policy->provider = header.provider;
  for (auto& [key, value] : fold::metadata_pairs(header)) {
    auto kv = std::make_unique<schema::KeyValueT>();
    kv->key = std::move(key);
    kv->value = std::move(value);
    open.metadata.push_back(std::move(kv));
  }
  open.parent_session_id = request.parent;
  open.parent_version = version;
  opened.payload.Set(std::move(open));
  std::string previous = opened.event_id;
  out.events.emplace_back(opened.event_id, finish(opened));

  // 2. The parent's accepted events up to the version, re-addressed to the child. Its own SessionOpened is
  // replaced by the one above and a SessionClosed is left out (a fork is open); versions shift by one only when
  // the parent never opened explicitly, and summaries' through_version shifts with them.
  const std::uint64_t shift = header.opened ? 0 : 1;
  std::string error;
  auto copied = fold::visit_history(reader, request.parent, {.through = version}, [&](const fold::HistoryRecord& r) {
    const auto* event = &r.event;
    const auto type = event->payload_type();
    if (type == schema::Payload::SessionOpened || type == schema::Payload::SessionClosed) return true;
    if (static_cast<std::uint8_t>(type) > static_cast<std::uint8_t>(schema::Payload::MAX)) {
      error = "version " + std::to_string(r.version()) + " of " + request.parent + " is an event of type " +
              codec::payload_type_name(static_cast<std::uint8_t>(type)) +
              ", which this build does not know and cannot copy";
      return false;
    }
    // Unpacked from an aligned copy: the event is nested in its history entry, where its 8-byte fields need not
    // sit on an 8-byte boundary (FlatBuffers' vector accessors assume they do).
    const std::vector<std::uint8_t> aligned(r.event_bytes.begin(), r.event_bytes.end());
    schema::EventT copy;
    schema::GetEvent(aligned.data())->UnPackTo(&copy);
    const std::string parent_id = copy.event_id;
    copy.event_id = child_event_id(request.child, parent_id);
    copy.session_id = request.child;
    copy.expected_version = flatbuffers::nullopt;
    copy.expected_previous_event_id = previous;
    copy.causation_id = parent_id;
    if (auto* summary = copy.payload.AsSummary()) summary->through_version += shift;
    if (auto* amended = copy.payload.AsSessionAmended()) {
      for (auto& withdrawn : amended->withdraw_versions) withdrawn += shift;
    }
    previous = copy.event_id;
    out.events.emplace_back(copy.event_id, finish(copy));
    return true;
  });
  if (!copied) return copied.error();
  if (!error.empty()) return base::make_error(error);
  return out;
}

}  // namespace statefold::fork
