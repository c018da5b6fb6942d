// Private to the protocol module: JSON helpers shared by its .cc files (Boost.JSON stays out of protocol.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "base/json_text.h"
#include "base/result.h"

namespace statefold::protocol::detail {

namespace json = boost::json;

// Canonical text: object keys sorted by bytes, compact, shortest round-trip numbers. Fails on non-finite numbers.
// With sort_keys false, the keys keep their order (a JSON Schema's property order is the order a model writes them).
base::Result<void> canonical(std::string& out, const json::value& v, bool sort_keys = true);
std::string canonical(const json::value& v);  // for values known to be finite (parsed ones)

base::Result<json::value> parse(std::string_view text, std::string_view what);

inline void str(std::string& out, std::string_view text) { base::append_json_string(out, text); }
void num(std::string& out, std::uint64_t n);
void inum(std::string& out, std::int64_t n);
void dbl(std::string& out, double d);

// `"name":` then a string / number, with a leading comma unless `first`.
inline void key(std::string& out, std::string_view name) {
  out += '"';
  out += name;
  out += "\":";
}

// Object member lookups that treat null as absent.
const json::value* member(const json::object& o, std::string_view name);
std::string string_or(const json::object& o, std::string_view name, std::string_view fallback = {});
std::uint64_t uint_or(const json::object& o, std::string_view name, std::uint64_t fallback = 0);

}  // namespace statefold::protocol::detail
