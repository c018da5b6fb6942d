// Canonical JSON text of a parsed value: object keys sorted by bytes (unless told to keep their order), no
// whitespace, shortest round-trip numbers, strings escaped by base::append_json_string. The one writer behind every
// byte statefold hashes or compares as JSON (rendered requests, pass-through parameters, protocol output), so the
// same value always gives the same bytes. For .cc files of the connector modules; Boost.JSON is in its signature.
#pragma once

#include <string>

#include <boost/json/value.hpp>

#include "base/result.h"

namespace statefold::context {

// Fails on a non-finite number (JSON has none).
base::Result<void> append_canonical_json(std::string& out, const boost::json::value& value, bool sort_keys = true);

}  // namespace statefold::context
