#include "connectors/providers/internal/params.h"

#include <algorithm>

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

void pass_through(const protocol::Params& params, object& o) {
  for (const auto& [name, text] : params.passthrough) {
    if (!o.contains(name)) o[name] = parsed(text);
  }
}

base::Result<void> pass_through_only(const protocol::Params& params, std::initializer_list<std::string_view> allowed,
                                     std::string_view provider, object& o) {
  for (const auto& [name, text] : params.passthrough) {
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return base::make_error(name + ": not a parameter statefold knows or the " + std::string(provider) +
                              " endpoint takes (parameters statefold does not know pass through only to "
                              "openai_chat and openai_responses endpoints)");
    }
    if (!o.contains(name)) o[name] = parsed(text);
  }
  return {};
}

}  // namespace statefold::providers::internal
