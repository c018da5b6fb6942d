// OpenAI Responses, stateless (POST /responses with input items and store:false): the body, the parameters, the
// replies and the stream. Private to the providers module: reached through providers::get().
#pragma once

#include "connectors/providers/provider.h"

namespace statefold::providers::openai_responses {

class OpenAIResponses final : public Provider {
 public:
  context::Provider id() const override { return context::Provider::openai_responses; }
  base::Result<std::string> render(const context::Context& context,
                                   const context::RenderOptions& options) const override;
  base::Result<std::string> extra(const protocol::Params& params, bool stream) const override;
  base::Result<protocol::Reply> parse_reply(std::string_view body) const override;
  std::unique_ptr<StreamDecoder> stream_decoder() const override;
  std::string upstream_path(std::string_view /*model*/, bool /*stream*/) const override { return "/responses"; }
};

}  // namespace statefold::providers::openai_responses
