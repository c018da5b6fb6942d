#include "connectors/context/canonical_json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <vector>

#include <boost/json.hpp>

#include "base/json_text.h"

namespace statefold::context {

namespace {

template <typename Number>
void append_number(std::string& out, Number n) {
  std::array<char, 32> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), r.ptr);
}

}  // namespace

base::Result<void> append_canonical_json(std::string& out, const boost::json::value& v, bool sort_keys) {
  namespace json = boost::json;
  switch (v.kind()) {
    case json::kind::null: out += "null"; break;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case json::kind::int64: append_number(out, v.get_int64()); break;
    case json::kind::uint64: append_number(out, v.get_uint64()); break;
    case json::kind::double_:
      if (!std::isfinite(v.get_double())) return base::make_error("not a finite number");
      append_number(out, v.get_double());
      break;
    case json::kind::string: base::append_json_string(out, v.get_string()); break;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ',';
        first = false;
        if (auto r = append_canonical_json(out, e, sort_keys); !r) return r;
      }
      out += ']';
      break;
    }
    case json::kind::object: {
      std::vector<const json::key_value_pair*> members;
      for (const auto& kv : v.get_object()) members.push_back(&kv);
      if (sort_keys) {
        std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) { return a->key() < b->key(); });
      }
      out += '{';
      for (std::size_t i = 0; i < members.size(); ++i) {
        if (i > 0) out += ',';
        base::append_json_string(out, members[i]->key());
        out += ':';
        if (auto r = append_canonical_json(out, members[i]->value(), sort_keys); !r) return r;
      }
      out += '}';
      break;
    }
  }
  return {};
}

}  // namespace statefold::context
