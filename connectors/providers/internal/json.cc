#include "connectors/providers/internal/json.h"

namespace statefold::providers::internal {

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
