// The history messages the gateway appends, from client messages and from replies.
#include "connectors/protocol/protocol.h"

namespace statefold::protocol {

context::Message to_message(const ClientMessage& message) {
  context::Message m;
  m.role = message.role;
  m.content = message.content;
  m.tool_calls = message.tool_calls;
  m.tool_call_id = message.tool_call_id;
  m.name = message.name;
  return m;
}

context::Message to_message(const Reply& reply) {
  context::Message m;
  m.role = context::Role::assistant;
  if (!reply.text.empty()) m.content.push_back(context::Part{context::PartKind::text, reply.text, {}});
  m.tool_calls = reply.tool_calls;
  return m;
}

}  // namespace statefold::protocol
