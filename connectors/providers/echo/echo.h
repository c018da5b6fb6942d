// echo: the offline provider. Its body is openai_chat's (so a receipt's hash means the same thing), nothing is
// called, and the answer describes the context it was given. Private to the providers module, but for echo_reply,
// which tests and tools may call directly.
#pragma once

#include "connectors/providers/openai_chat/openai_chat.h"

namespace statefold::providers::echo {

// The echo reply text: the sections received with their token counts, what was cut, and the last user message.
// Deterministic.
std::string echo_reply(const context::Context& context);

class Echo final : public openai_chat::OpenAIChat {
 public:
  context::Provider id() const override { return context::Provider::echo; }
  base::Result<protocol::Reply> parse_reply(std::string_view body) const override;
  std::string upstream_path(std::string_view /*model*/, bool /*stream*/) const override { return ""; }
  bool offline() const override { return true; }
  std::string offline_reply(const context::Context& context) const override {
    return echo::echo_reply(context);
  }
  // The reply cut before each space, as a stream would bring it.
  std::vector<protocol::Delta> offline_deltas(std::string_view reply) const override;
};

}  // namespace statefold::providers::echo
