// Private to the gateway: the events a turn records, with their envelope (source "gateway", fresh ids) and, for a
// turn's input, conditional-batch chaining on the session's version so the input folds whole or not at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "connectors/protocol/protocol.h"
#include "engine/append/append.h"
#include "engine/base/result.h"
#include "engine/codec/codec.h"

namespace statefold::gateway::internal {

struct Call;

// The id of a turn's event named by the client's Idempotency-Key: `what` is "input" (index: the message),
// "receipt" (index: the attempt) or "reply"; the same key always names the same events, so a retried turn is
// recognised by the fold's dedupe index.
codec::EventId turn_event_id(std::string_view idempotency_key, std::string_view what, std::uint64_t index = 0);

// A client's message as the event that records it.
codec::Message message_event(const protocol::ClientMessage& message);

// A turn's input, conditional on the session being at `version` (nullopt: a new session, opened first with its
// leading system/developer messages, or the instructions, as its system prompt, and `model`).
base::Result<append::Events> input_events(const std::string& session, std::optional<std::uint64_t> version,
                                          const std::vector<protocol::ClientMessage>& input, const std::string& model,
                                          const std::string& instructions, std::string_view idempotency_key = {},
                                          std::vector<codec::KeyValue> metadata = {});

// A call's receipt, then its reply (if any) and, for a reply not to be stored, the kUnstoredResponse marker; not
// conditional (they follow the turn's input, whatever came since).
// With the call's Idempotency-Key, the reply's id comes from it, and the receipt's from it and the call's attempt.
base::Result<append::Events> outcome_events(const std::string& session, const protocol::Reply* reply, const Call& call);

}  // namespace statefold::gateway::internal
