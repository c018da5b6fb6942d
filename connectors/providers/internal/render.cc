#include "connectors/providers/internal/render.h"

#include <algorithm>

#include <boost/json.hpp>

namespace statefold::providers::internal {

using context::Message;
using context::Part;
using context::PartKind;

base::Result<std::string> extra_members(std::string_view extra, std::initializer_list<std::string_view> reserved) {
  std::string out;
  if (extra.empty()) return out;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(extra, ec);
  if (ec) return base::make_error("context: extra request parameters are not JSON: " + ec.message());
  if (!v.is_object()) return base::make_error("context: extra request parameters must be a JSON object");
  for (const auto& kv : v.get_object()) {
    if (std::find(reserved.begin(), reserved.end(), std::string_view(kv.key())) != reserved.end()) {
      return base::make_error("context: extra request parameter \"" + std::string(kv.key()) +
                              "\" is written by the renderer");
    }
  }
  if (auto r = base::json::canonical(out, v); !r) {
    return base::make_error("context: extra request parameters: " + r.error().message);
  }
  if (out.size() <= 2) return std::string();  // {}
  return out.substr(1, out.size() - 2);
}

bool has_image(const Message& m) {
  return std::any_of(m.content.begin(), m.content.end(), [](const Part& p) { return p.kind == PartKind::image_url; });
}

std::string_view joined_text(const Message& m, std::string& scratch) {
  if (m.content.size() == 1 && m.content[0].kind != PartKind::image_url) return m.content[0].text;
  scratch.clear();
  for (std::size_t i = 0; i < m.content.size(); ++i) {
    if (i > 0) scratch += '\n';
    const Part& p = m.content[i];
    if (p.kind == PartKind::image_url) {
      scratch += "[image: ";
      scratch += p.text;
      scratch += ']';
    } else {
      scratch += p.text;
    }
  }
  return scratch;
}

bool item_has_calls(const context::Item& item) {
  return item.all_calls ? !item.message->tool_calls.empty() : !item.calls.empty();
}

void object_arguments(std::string& out, std::string_view arguments) {
  const auto blank = arguments.find_first_not_of(" \t\r\n");
  if (blank == std::string_view::npos) {
    out += "{}";
    return;
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(arguments, ec);
  if (!ec && v.is_object()) {
    std::string text;
    if (base::json::canonical(text, v).ok()) {
      out += text;
      return;
    }
  }
  out += R"({"raw_arguments":)";
  str(out, arguments);
  out += '}';
}

void open_body(std::string& out, const context::Context& ctx, std::string_view max_key) {
  out += '{';
  key(out, "model");
  str(out, ctx.state->model);
  out += ',';
  key(out, max_key);
  num(out, ctx.output_reserve);
}

void append_extras(std::string& out, const std::string& extras) {
  if (extras.empty()) return;
  out += ',';
  out += extras;
}

std::size_t estimate(const context::Context& ctx) {
  std::size_t n = 256 + ctx.system_text.size() + ctx.memory_text.size() + ctx.summary_text.size();
  for (const auto& item : ctx.history) n += 64 + item.tokens * 5;
  return n;
}

}  // namespace statefold::providers::internal
