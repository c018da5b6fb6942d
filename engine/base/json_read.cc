#include "engine/base/json_read.h"

namespace statefold::base::json {

namespace bj = boost::json;

Result<bj::value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  bj::value v = bj::parse(text, ec);
  if (ec) return make_error(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

const bj::value* member(const bj::object& o, std::string_view name) {
  const bj::value* v = o.if_contains(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

const bj::object* object_member(const bj::object& o, std::string_view name) {
  const bj::value* v = member(o, name);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

const bj::array* array_member(const bj::object& o, std::string_view name) {
  const bj::value* v = member(o, name);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

std::string string_or(const bj::object& o, std::string_view name, std::string_view fallback) {
  const bj::value* v = member(o, name);
  if (v == nullptr || !v->is_string()) return std::string(fallback);
  return std::string(v->get_string());
}

std::uint64_t uint_or(const bj::object& o, std::string_view name, std::uint64_t fallback) {
  const bj::value* v = member(o, name);
  if (v == nullptr) return fallback;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) return v->get_int64() < 0 ? 0 : static_cast<std::uint64_t>(v->get_int64());
  if (v->is_double() && v->get_double() >= 0) return static_cast<std::uint64_t>(v->get_double());
  return fallback;
}

}  // namespace statefold::base::json
