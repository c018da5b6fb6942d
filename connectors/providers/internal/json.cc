#include "connectors/providers/internal/json.h"

namespace statefold::providers::internal {

base::Result<value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  value v = json::parse(text, ec);
  if (ec) return base::make_error(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

const value* member(const object& o, std::string_view name) {
  const value* v = o.if_contains(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

const object* object_member(const object& o, std::string_view name) {
  const value* v = member(o, name);
  return v != nullptr && v->is_object() ? &v->get_object() : nullptr;
}

const array* array_member(const object& o, std::string_view name) {
  const value* v = member(o, name);
  return v != nullptr && v->is_array() ? &v->get_array() : nullptr;
}

std::string string_or(const object& o, std::string_view name, std::string_view fallback) {
  const value* v = member(o, name);
  if (v == nullptr || !v->is_string()) return std::string(fallback);
  return std::string(v->get_string());
}

std::uint64_t uint_or(const object& o, std::string_view name, std::uint64_t fallback) {
  const value* v = member(o, name);
  if (v == nullptr) return fallback;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) return v->get_int64() < 0 ? 0 : static_cast<std::uint64_t>(v->get_int64());
  if (v->is_double() && v->get_double() >= 0) return static_cast<std::uint64_t>(v->get_double());
  return fallback;
}

std::string error_text(const object& o) {
  const object* e = object_member(o, "error");
  if (e == nullptr) return {};
  const std::string type = string_or(*e, "type");
  const std::string code = string_or(*e, "code");
  std::string message = string_or(*e, "message");
  if (message.empty()) message = "(no message)";
  if (type == "rate_limit_error" || code == "rate_limit_exceeded" || type == "rate_limit_exceeded") {
    return "rate limited: " + message;
  }
  if (type == "overloaded_error") return "overloaded: " + message;
  if (!code.empty() && code != type) return (type.empty() ? code : type + " (" + code + ")") + ": " + message;
  if (!type.empty()) return type + ": " + message;
  return message;
}

base::Result<value> reply_object(std::string_view body, std::string_view name) {
  auto v = parse(body, std::string(name) + " reply");
  if (!v) return v.error();
  if (!v->is_object()) return base::make_error(std::string(name) + " reply: not an object");
  const object& o = v->get_object();
  if (member(o, "error") != nullptr && member(o, "choices") == nullptr && member(o, "output") == nullptr &&
      member(o, "content") == nullptr) {
    return base::make_error(error_text(o));
  }
  return v;
}

}  // namespace statefold::providers::internal
