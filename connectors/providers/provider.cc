// The registry, the stream decoders' shared bookkeeping, and the error wording every provider family shares.
#include "connectors/providers/provider.h"

#include <algorithm>

#include "connectors/providers/anthropic/anthropic.h"
#include "connectors/providers/bedrock_converse/bedrock_converse.h"
#include "connectors/providers/echo/echo.h"
#include "connectors/providers/internal/json.h"
#include "connectors/providers/openai_chat/openai_chat.h"
#include "connectors/providers/openai_responses/openai_responses.h"

namespace statefold::providers {
namespace {

const openai_chat::OpenAIChat kOpenAIChat;
const openai_responses::OpenAIResponses kOpenAIResponses;
const anthropic::Anthropic kAnthropic;
const bedrock_converse::BedrockConverse kBedrockConverse;
const echo::Echo kEcho;

const Provider* const kAll[] = {&kOpenAIChat, &kOpenAIResponses, &kAnthropic, &kBedrockConverse, &kEcho};

}  // namespace

int StreamDecoder::tool_slot(std::int64_t provider_index) const {
  for (std::size_t i = 0; i < _tool_keys.size(); ++i) {
    if (_tool_keys[i] == provider_index) return static_cast<int>(i);
  }
  return -1;
}

const Provider& get(context::Provider provider) {
  switch (provider) {
    case context::Provider::openai_chat: return kOpenAIChat;
    case context::Provider::openai_responses: return kOpenAIResponses;
    case context::Provider::anthropic: return kAnthropic;
    case context::Provider::bedrock_converse: return kBedrockConverse;
    case context::Provider::echo: return kEcho;
  }
  return kOpenAIChat;  // not reached: every enumerator is handled above
}

const Provider* find(std::string_view name) {
  const auto it = std::find_if(std::begin(kAll), std::end(kAll), [&](const Provider* p) { return p->name() == name; });
  return it == std::end(kAll) ? nullptr : *it;
}

std::string error_message(std::string_view body) {
  boost::system::error_code ec;
  internal::value v = internal::json::parse(body, ec);
  if (!ec && v.is_object()) {
    std::string text = internal::error_text(v.get_object());
    if (!text.empty()) return text;
    std::string message = internal::string_or(v.get_object(), "message");
    if (!message.empty()) return message;
  }
  // Not a JSON error: the first non-blank line, at most 200 bytes.
  const auto start = body.find_first_not_of(" \t\r\n");
  if (start == std::string_view::npos) return "empty error body";
  std::string_view line = body.substr(start);
  line = line.substr(0, std::min(line.find_first_of("\r\n"), std::size_t{200}));
  return std::string(line);
}

}  // namespace statefold::providers
