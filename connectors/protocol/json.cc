#include "connectors/protocol/internal/json.h"

namespace statefold::protocol::detail {

base::Result<json::value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return base::make_error(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

const json::value* member(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::string string_or(const json::object& o, std::string_view name, std::string_view fallback) {
  const json::value* v = member(o, name);
  if (v == nullptr || !v->is_string()) return std::string(fallback);
  return std::string(v->get_string());
}

std::uint64_t uint_or(const json::object& o, std::string_view name, std::uint64_t fallback) {
  const json::value* v = member(o, name);
  if (v == nullptr) return fallback;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) return v->get_int64() < 0 ? 0 : static_cast<std::uint64_t>(v->get_int64());
  if (v->is_double() && v->get_double() >= 0) return static_cast<std::uint64_t>(v->get_double());
  return fallback;
}

}  // namespace statefold::protocol::detail
