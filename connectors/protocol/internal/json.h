// Private to the protocol module: JSON helpers shared by its .cc files (Boost.JSON stays out of protocol.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "engine/base/json_read.h"
#include "engine/base/json_writer.h"
#include "engine/base/result.h"

namespace statefold::protocol::detail {

namespace json = boost::json;

// The one JSON writer (base/json_writer.h): str, key, num, inum, dbl, and canonical text of a parsed value (keys
// sorted by bytes unless `sort_keys` is false; fails on non-finite numbers).
using base::json::dbl;
using base::json::inum;
using base::json::key;
using base::json::num;
using base::json::str;
inline base::Result<void> canonical(std::string& out, const json::value& v, bool sort_keys = true) {
  return base::json::canonical(out, v, sort_keys);
}

// The readers every JSON-reading module shares (base/json_read.h).
using base::json::member;
using base::json::parse;
using base::json::string_or;
using base::json::uint_or;

}  // namespace statefold::protocol::detail
