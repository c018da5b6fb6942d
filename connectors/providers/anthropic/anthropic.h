// Anthropic Messages (POST /messages, with cache_control breakpoints): the body, the parameters, the replies, the
// stream and the token margin. Private to the providers module: reached through providers::get().
#pragma once

#include "connectors/providers/provider.h"

namespace statefold::providers::anthropic {

// Anthropic's tokenizer is not public: its requests are budgeted with o200k_base counts times this margin, so that
// a context cut to fit errs on the safe side, and the gateway calibrates it from the usage replies report;
// docs/connectors.md gives the reasons for the figure.
inline constexpr double kMargin = 1.10;

class Anthropic final : public Provider {
 public:
  context::Provider id() const override { return context::Provider::anthropic; }
  base::Result<std::string> render(const context::Context& context,
                                   const context::RenderOptions& options) const override;
  base::Result<std::string> extra(const protocol::Params& params, bool stream) const override;
  base::Result<protocol::Reply> parse_reply(std::string_view body) const override;
  std::unique_ptr<StreamDecoder> stream_decoder() const override;
  std::string upstream_path(std::string_view /*model*/, bool /*stream*/) const override { return "/messages"; }
  double token_margin() const override { return kMargin; }
  bool calibrated_margin() const override { return true; }
};

}  // namespace statefold::providers::anthropic
