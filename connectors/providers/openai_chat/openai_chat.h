// OpenAI Chat Completions (POST /chat/completions): the body, the parameters, the replies and the stream.
// Private to the providers module: reached through providers::get(context::Provider::openai_chat).
#pragma once

#include "connectors/providers/provider.h"

namespace statefold::providers::openai_chat {

class OpenAIChat : public Provider {
 public:
  context::Provider id() const override { return context::Provider::openai_chat; }
  base::Result<std::string> render(const context::Context& context,
                                   const context::RenderOptions& options) const override;
  base::Result<std::string> extra(const protocol::Params& params, bool stream) const override;
  base::Result<protocol::Reply> parse_reply(std::string_view body) const override;
  std::unique_ptr<StreamDecoder> stream_decoder() const override;
  std::string upstream_path(std::string_view /*model*/, bool /*stream*/) const override { return "/chat/completions"; }
};

}  // namespace statefold::providers::openai_chat
