// Reading parsed Boost.JSON values: the lookups every module that reads client or provider JSON needs, written once.
// Include it only from .cc files and internal/ headers of modules that already use Boost.JSON privately, so that
// Boost stays out of public headers.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "engine/base/result.h"

namespace statefold::base::json {

// `text` parsed; the error names `what` ("request body", "anthropic reply") and Boost's reason.
Result<boost::json::value> parse(std::string_view text, std::string_view what);

// Object member lookups that treat null as absent.
const boost::json::value* member(const boost::json::object& o, std::string_view name);
const boost::json::object* object_member(const boost::json::object& o, std::string_view name);
const boost::json::array* array_member(const boost::json::object& o, std::string_view name);
std::string string_or(const boost::json::object& o, std::string_view name, std::string_view fallback = {});
// A non-negative integer member; negatives read as 0 and fractions are truncated (token counts, limits).
std::uint64_t uint_or(const boost::json::object& o, std::string_view name, std::uint64_t fallback = 0);

}  // namespace statefold::base::json
