// Private to the providers module: JSON reading helpers shared by the provider folders (Boost.JSON stays out of
// provider.h), and the error shape every provider family shares.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "base/json_writer.h"
#include "base/result.h"

namespace statefold::providers::internal {

namespace json = boost::json;
using json::array;
using json::object;
using json::value;

base::Result<value> parse(std::string_view text, std::string_view what);

// Object member lookups that treat null as absent.
const value* member(const object& o, std::string_view name);
const object* object_member(const object& o, std::string_view name);
const array* array_member(const object& o, std::string_view name);
std::string string_or(const object& o, std::string_view name, std::string_view fallback = {});
std::uint64_t uint_or(const object& o, std::string_view name, std::uint64_t fallback = 0);

// The message of an {"error":{...}} member, as error_message() words it; "" when there is none.
std::string error_text(const object& o);

// A whole reply body of provider `name` as an object; an error when it does not parse or is an error body.
base::Result<value> reply_object(std::string_view body, std::string_view name);

}  // namespace statefold::providers::internal
