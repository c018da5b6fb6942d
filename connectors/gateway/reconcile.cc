#include "connectors/gateway/internal/reconcile.h"

#include <boost/json.hpp>

#include <algorithm>

namespace statefold::gateway::internal {

namespace {

bool is_prompt(const protocol::ClientMessage& m) {
  return m.role == context::Role::system || m.role == context::Role::developer;
}

// JSON documents compare as values (key order and spacing aside); anything else byte for byte.
bool same_json(std::string_view a, std::string_view b) {
  if (a == b) return true;
  boost::system::error_code ea, eb;
  const auto va = boost::json::parse(a, ea);
  const auto vb = boost::json::parse(b, eb);
  return !ea && !eb && va == vb;
}

// Empty text parts carry nothing: a client's `"content": ""` beside tool calls is the stored empty content.
std::vector<const context::Part*> meaningful(const std::vector<context::Part>& parts) {
  std::vector<const context::Part*> out;
  for (const auto& p : parts) {
    if (p.kind != context::PartKind::text || !p.text.empty()) out.push_back(&p);
  }
  return out;
}

bool same_message(const protocol::ClientMessage& client, const context::Message& stored) {
  if (client.role != stored.role || client.tool_call_id != stored.tool_call_id) return false;
  if (!client.name.empty() && client.name != stored.name) return false;
  const auto a = meaningful(client.content);
  const auto b = meaningful(stored.content);
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i]->kind != b[i]->kind || a[i]->media_type != b[i]->media_type) return false;
    const bool json = a[i]->kind == context::PartKind::json;
    if (json ? !same_json(a[i]->text, b[i]->text) : a[i]->text != b[i]->text) return false;
  }
  if (client.tool_calls.size() != stored.tool_calls.size()) return false;
  for (std::size_t i = 0; i < client.tool_calls.size(); ++i) {
    const auto& x = client.tool_calls[i];
    const auto& y = stored.tool_calls[i];
    if (x.id != y.id || x.name != y.name || !same_json(x.arguments, y.arguments)) return false;
  }
  return true;
}

}  // namespace

Reconciled reconcile(const std::vector<protocol::ClientMessage>& client, std::string_view system_prompt,
                     const std::vector<context::Message>& history) {
  std::size_t prompts = 0;
  std::string joined;
  while (prompts < client.size() && is_prompt(client[prompts])) {
    if (!joined.empty()) joined += "\n\n";
    joined += client[prompts].text();
    ++prompts;
  }
  const bool same_prompt = prompts > 0 && joined == system_prompt;

  // The latest point k where the client's messages end as the history ends: over all the history, or over all the
  // client's messages from the first after its prompt, whichever is shorter.
  const std::size_t stored = history.size();
  for (std::size_t k = client.size(); stored > 0 && k-- > prompts;) {
    const std::size_t overlap = std::min(k - prompts + 1, stored);
    bool matches = true;
    for (std::size_t i = 0; i < overlap && matches; ++i) matches = same_message(client[k - i], history[stored - 1 - i]);
    if (!matches) continue;
    if (prompts > 0 && !same_prompt) {
      return {prompts, true,
              "the system prompt sent differs from the session's; it cannot be changed by resending the "
              "conversation (send the new instructions as a message, or fork the session)"};
    }
    return {k + 1, false, {}};
  }
  // No overlap: new messages, unless they are a conversation (a user message, then a reply) the session has
  // history before: a resent one that went another way. An assistant message with no user message before it is new
  // input (a tool call the client made itself).
  const std::size_t first_new = same_prompt ? prompts : 0;
  const auto first_user = std::find_if(client.begin() + static_cast<std::ptrdiff_t>(prompts), client.end(),
                                       [](const auto& m) { return m.role == context::Role::user; });
  const bool conversation = std::any_of(first_user, client.end(),
                                        [](const auto& m) { return m.role == context::Role::assistant; });
  if (conversation && stored > 0) {
    return {first_new, true,
            "the conversation sent does not continue the session's history (the messages sent do not end, at any "
            "point, as the stored history ends); send only the new messages, or fork the session to branch"};
  }
  return {first_new, false, {}};
}

}  // namespace statefold::gateway::internal
