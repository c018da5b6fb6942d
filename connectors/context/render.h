// render: what every rendered request shares, whatever the provider: the Provider ids, the extra parameters a body
// takes, the request hash a receipt holds, the context overview and the prompt-cache prefix check. The bodies
// themselves are rendered by each provider's folder (connectors/providers), from the Context materialised here:
//
//   auto body = providers::get(context::Provider::anthropic).render(ctx, {.extra = R"({"temperature":0.2})"});
//   receipt.request_hash = context::request_hash(*body);
//
// Every body puts the conversation last, so that a request whose history only grew since the previous one starts
// with the previous one's bytes (see prefix_reused()). Pure and thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "connectors/context/context.h"
#include "engine/base/result.h"

namespace statefold::context {

enum class Provider : std::uint8_t {
  openai_chat = 0,       // POST /v1/chat/completions
  openai_responses = 1,  // POST /v1/responses, stateless: input items and store:false
  anthropic = 2,         // POST /v1/messages, with cache_control breakpoints
  echo = 3,              // offline: an openai_chat body, answered by the echo provider itself
  bedrock_converse = 4,  // POST /model/{modelId}/converse on AWS Bedrock, SigV4-signed
};

// Every provider, in the order lists name them. The one list of providers: routing's validation, the CLI's and the
// API's messages all come from it, so that a new provider is an enumerator here plus its folder in providers/.
inline constexpr Provider kProviders[] = {Provider::openai_chat, Provider::openai_responses, Provider::anthropic,
                                          Provider::bedrock_converse, Provider::echo};

std::string_view provider_name(Provider provider);  // "openai_chat", "anthropic", "bedrock_converse"...
std::optional<Provider> parse_provider(std::string_view name);
// "openai_chat, openai_responses, anthropic, bedrock_converse, echo": for messages that list the choices.
std::string provider_names(std::string_view separator = ", ");

struct RenderOptions {
  // Extra request parameters the gateway passes through (tools, temperature, stream...): a JSON object whose
  // members are written, sorted by key and re-serialised compactly, between the fixed head and the conversation.
  // Empty = none. Keys the renderer writes itself (model, messages...) are refused.
  std::string_view extra;
};

// Hex SHA-256 of a rendered body: what InferenceReceipt.request_hash holds.
std::string request_hash(std::string_view body);

// The context overview (GET /v1/sessions/{id}/context?provider=..): sections, token counts, budget, what was cut,
// the request hash and the rendered body itself (embedded as JSON, not as a string). `body` is the provider's rendered body.
std::string overview_json(const Context& context, Provider provider, std::string_view body);

// True when `next` starts with `previous` up to its closing brackets, once Anthropic's cache_control markers are
// removed from both (providers leave them out of the cache key): `next` then reuses `previous` as its prompt-cache
// prefix. What the prefix-stability benchmark counts.
bool prefix_reused(std::string_view previous, std::string_view next);

// The cache_control marker Anthropic's renderer puts on its breakpoints, which prefix_reused() leaves out.
inline constexpr std::string_view kCacheControlMarker = R"(,"cache_control":{"type":"ephemeral"})";

}  // namespace statefold::context
