// Private to the providers module: pieces of the client's parameters that several providers write alike.
#pragma once

#include <string>

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

}  // namespace statefold::providers::internal
