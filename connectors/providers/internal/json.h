// Private to the providers module: JSON reading helpers shared by the provider folders (Boost.JSON stays out of
// provider.h), and the error shape every provider family shares.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "engine/base/json_read.h"
#include "engine/base/json_writer.h"
#include "engine/base/result.h"

namespace statefold::providers::internal {

namespace json = boost::json;
using json::array;
using json::object;
using json::value;

// The readers every JSON-reading module shares (base/json_read.h).
using base::json::array_member;
using base::json::member;
using base::json::object_member;
using base::json::parse;
using base::json::string_or;
using base::json::uint_or;

// The message of an {"error":{...}} member, as error_message() words it; "" when there is none.
std::string error_text(const object& o);

// A whole reply body of provider `name` as an object; an error when it does not parse or is an error body.
base::Result<value> reply_object(std::string_view body, std::string_view name);

}  // namespace statefold::providers::internal
