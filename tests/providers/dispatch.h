// The provider registry called the way the tests were written before providers/ existed: by provider id, with a
// stream decoder held as a value. Keeps the assertions of the moved tests as they were.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "connectors/providers/provider.h"

namespace statefold::providers::testing {

inline base::Result<std::string> render(const context::Context& ctx, context::Provider provider,
                                        const context::RenderOptions& options = {}) {
  return get(provider).render(ctx, options);
}

inline base::Result<std::string> upstream_extra(const protocol::Params& params, context::Provider provider,
                                                bool stream) {
  return get(provider).extra(params, stream);
}

inline base::Result<protocol::Reply> parse_reply(context::Provider provider, std::string_view body) {
  return get(provider).parse_reply(body);
}

class StreamParser {
 public:
  explicit StreamParser(context::Provider provider) : _decoder(get(provider).stream_decoder()) {}
  base::Result<std::vector<protocol::Delta>> feed(std::string_view event_name, std::string_view data) {
    return _decoder->feed(event_name, data);
  }
  bool finished() const { return _decoder->finished(); }
  const protocol::Reply& reply() const { return _decoder->reply(); }

 private:
  std::unique_ptr<StreamDecoder> _decoder;
};

}  // namespace statefold::providers::testing
