// AWS Bedrock's Converse API (POST /model/{modelId}/converse, and /converse-stream answered in AWS event-stream
// frames): the body, the parameters, the replies, the stream, the path and the token margin. The signing (SigV4) is
// the upstream client's auth style. Private to the providers module: reached through providers::get().
//
// The model id goes in the path, not the body, URL-encoded ("anthropic.claude-3-5-sonnet-20240620-v1:0" travels as
// "...-v1%3A0", an ARN's '/' as %2F), so the body of one conversation is the same whatever model serves it.
#pragma once

#include "connectors/providers/provider.h"

namespace statefold::providers::bedrock_converse {

// Bedrock serves several model families (Claude, Llama, Mistral, Nova...) whose tokenizers are not all public and
// some of which count well above o200k_base: requests are budgeted with o200k_base counts times this margin, erring
// on the safe side, and the gateway calibrates it per endpoint from the inputTokens replies report.
inline constexpr double kMargin = 1.20;

// The reserved output of the body goes in inferenceConfig.maxTokens; the extra parameters may bring their own
// inferenceConfig members (temperature, topP, stopSequences), merged with it.
class BedrockConverse final : public Provider {
 public:
  context::Provider id() const override { return context::Provider::bedrock_converse; }
  base::Result<std::string> render(const context::Context& context,
                                   const context::RenderOptions& options) const override;
  base::Result<std::string> extra(const protocol::Params& params, bool stream) const override;
  base::Result<protocol::Reply> parse_reply(std::string_view body) const override;
  std::unique_ptr<StreamDecoder> stream_decoder() const override;
  std::string upstream_path(std::string_view model, bool stream) const override;
  double token_margin() const override { return kMargin; }
  bool calibrated_margin() const override { return true; }
};

}  // namespace statefold::providers::bedrock_converse
