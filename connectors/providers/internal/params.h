// Private to the providers module: pieces of the client's parameters that several providers write alike.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "connectors/protocol/protocol.h"
#include "connectors/providers/internal/json.h"

namespace statefold::providers::internal {

// Client JSON text (a schema) as a value; {} when it does not parse (the request parser already checked it).
value parsed(const std::string& text);
// {"properties":{},"type":"object"}: the schema of a tool that gave none.
value empty_schema();
// An output format as Chat's response_format (`chat`) or Responses' text.format.
value format_json(const protocol::OutputFormat& f, bool chat);
// The params as canonical JSON text.
base::Result<std::string> canonical_text(const object& o);
// The client's parameters the gateway does not know, added to `o` as given (an OpenAI-compatible endpoint's own,
// as vLLM's top_k), except where `o` already has the member.
void pass_through(const protocol::Params& params, object& o);
// Refuses the parameters the gateway does not know but those in `allowed`, which go to `o` as given: a provider
// with its own API takes only what it documents.
base::Result<void> pass_through_only(const protocol::Params& params, std::initializer_list<std::string_view> allowed,
                                     std::string_view provider, object& o);

}  // namespace statefold::providers::internal
