#include "connectors/providers/internal/params.h"

namespace statefold::providers::internal {

value parsed(const std::string& text) {
  boost::system::error_code ec;
  value v = json::parse(text, ec);
  return ec ? value(object()) : v;
}

value empty_schema() {
  object o;
  o["type"] = "object";
  o["properties"] = object();
  return o;
}

value format_json(const protocol::OutputFormat& f, bool chat) {
  object o;
  o["type"] = f.type;
  if (f.type != "json_schema") return o;
  object s;
  s["name"] = f.name;
  if (!f.description.empty()) s["description"] = f.description;
  if (!f.schema.empty()) s["schema"] = parsed(f.schema);
  if (f.strict) s["strict"] = *f.strict;
  if (!chat) {
    for (auto& kv : s) o[kv.key()] = kv.value();
    return o;
  }
  o["json_schema"] = std::move(s);
  return o;
}

base::Result<std::string> canonical_text(const object& o) {
  std::string out;
  if (auto r = base::json::canonical(out, value(o)); !r) return base::make_error("parameters: " + r.error().message);
  return out;
}

}  // namespace statefold::providers::internal
