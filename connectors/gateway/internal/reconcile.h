// Private to the gateway: what of a chat request's messages the session already has. Most clients (LangChain, the
// SDKs' tool loops, every cookbook) resend the whole conversation each turn; statefold keeps it, so only the part
// past what is stored is new. Pure: no I/O, no state of its own.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/context/context.h"
#include "connectors/protocol/protocol.h"

namespace statefold::gateway::internal {

struct Reconciled {
  // The client's messages before this index are already in the session (its system prompt, or the end of its
  // history); the rest are the turn's new input.
  std::size_t known = 0;
  // The client sent a conversation (a user message, then a reply) that does not end as the stored history does,
  // or a system prompt other than the session's with it: recording it would duplicate or contradict what is
  // stored. (So a few-shot example conversation cannot be sent into a session that has history; fork it, or send
  // the examples in the system prompt.)
  bool diverged = false;
  std::string why;  // when diverged: what differs, for the client
};

// `client` against the session's system prompt and its history as folded. The stored history is recognised when
// the client's messages, up to some point, end exactly as it ends (the whole conversation resent, or a window of
// its latest messages); messages compare equal on role, content parts, tool calls (their JSON arguments as values,
// so a client that re-serialises them still matches), tool_call_id and name (when the client gives one). Leading
// system/developer messages equal to the session's system prompt are the prompt, not new history.
Reconciled reconcile(const std::vector<protocol::ClientMessage>& client, std::string_view system_prompt,
                     const std::vector<context::Message>& history);

}  // namespace statefold::gateway::internal
