// providers: everything specific to one model provider behind one small interface, so that a new provider is one
// folder. Each folder renders its request body from a materialised Context, writes the client's
// Params in its own shape, parses its whole replies, decodes its streams, and names its upstream path and its token
// margin. The neutral types stay below: context::Context and context::Provider, protocol::Params, Reply, Delta.
//
//   const providers::Provider& p = providers::get(context::Provider::anthropic);
//   auto extra = p.extra(request.params, request.stream);                 // "{...}" for RenderOptions::extra
//   auto body = p.render(ctx, {.extra = *extra});                        // canonical bytes, hashed into receipts
//   ... whole:    auto reply = p.parse_reply(response.body);
//   ... streamed: auto decoder = p.stream_decoder(); for each SSE event: decoder->feed(e.event, e.data)
//
// Thread-safety: providers are immutable singletons, safe to use concurrently; a StreamDecoder is used by one thread
// at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/context/context.h"
#include "connectors/context/render.h"
#include "connectors/protocol/protocol.h"
#include "engine/base/result.h"

namespace statefold::providers {

// Reads one upstream stream: feed each SSE event (name and data) in order. At the end reply() equals what
// Provider::parse_reply() gives for the same content, and the deltas put together are its text and arguments.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  // An error: malformed data, or the provider reported an error in the stream (the message as error_message()).
  // Nothing more is decoded once finished().
  base::Result<std::vector<protocol::Delta>> feed(std::string_view event_name, std::string_view data) {
    if (_finished) return std::vector<protocol::Delta>{};
    return decode(event_name, data);
  }
  bool finished() const { return _finished; }  // [DONE], message_stop, response.completed/incomplete
  const protocol::Reply& reply() const { return _reply; }

 protected:
  virtual base::Result<std::vector<protocol::Delta>> decode(std::string_view event_name, std::string_view data) = 0;
  int tool_slot(std::int64_t provider_index) const;  // the provider's tool index -> ours (-1 if unknown)

  protocol::Reply _reply;
  bool _finished = false;
  std::vector<std::int64_t> _tool_keys;  // provider index of each of our tool calls
};

class Provider {
 public:
  virtual ~Provider() = default;
  virtual context::Provider id() const = 0;
  std::string_view name() const { return context::provider_name(id()); }

  // The request body, as canonical JSON: the same Context always gives the same bytes (see context::request_hash).
  // Fails only on a bad `options.extra` (not JSON, not an object, or a key the renderer writes itself).
  virtual base::Result<std::string> render(const context::Context& context,
                                           const context::RenderOptions& options = {}) const = 0;

  // The client's parameters in this provider's shape, as one canonical JSON object for RenderOptions::extra: tools
  // and tool_choice converted, "stream":true when streaming. Never a key render() writes. Fails when a parameter
  // that changes what the reply must be (stop, a JSON output format) has no equivalent here; sampling hints the
  // provider lacks are dropped. "{}" when there is nothing to send.
  virtual base::Result<std::string> extra(const protocol::Params& params, bool stream) const = 0;

  // A whole (non-streamed) reply body.
  virtual base::Result<protocol::Reply> parse_reply(std::string_view body) const = 0;
  virtual std::unique_ptr<StreamDecoder> stream_decoder() const = 0;

  // Appended to the endpoint's base URL ("/chat/completions"); "" for an offline provider. The model and whether the
  // reply is streamed are for providers that put them in the path (Bedrock: /model/{id}/converse-stream).
  virtual std::string upstream_path(std::string_view model, bool stream) const = 0;

  // Token counts are o200k/cl100k counts times this margin; a provider whose tokenizer is not public errs on the
  // safe side. When calibrated(), the gateway corrects it per endpoint from the usage each reply reports.
  virtual double token_margin() const { return 1.0; }
  virtual bool calibrated_margin() const { return false; }

  // An offline provider answers without an upstream call: the reply text for a context, and its stream pieces.
  virtual bool offline() const { return false; }
  virtual std::string offline_reply(const context::Context& /*context*/) const { return {}; }
  virtual std::vector<protocol::Delta> offline_deltas(std::string_view /*reply*/) const { return {}; }
};

// The provider for an id; every context::Provider has one.
const Provider& get(context::Provider provider);
// By name (context::provider_name: "openai_chat", "anthropic", "bedrock_converse"...); nullptr when unknown.
const Provider* find(std::string_view name);

// An upstream error body as one line: "rate limited: <message>", "<type>: <message>", or the body's first line.
// Understands the OpenAI, Anthropic and Bedrock ({"message":...}) error shapes, so it needs no provider.
std::string error_message(std::string_view body);

}  // namespace statefold::providers
