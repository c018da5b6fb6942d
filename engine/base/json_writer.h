// The one JSON writer: string literals, member keys, numbers and separators appended to a std::string, for code
// that writes JSON text by hand (rendered request bodies, protocol output, log lines, generated workloads), where a
// document model would cost more than the text itself. Every byte statefold hashes as JSON goes through these
// functions, so they must never change what they write.
//
//   std::string out = "{";
//   base::json::key(out, "model");
//   base::json::str(out, model);
//   out += ',';
//   base::json::key(out, "max_tokens");
//   base::json::num(out, max_tokens);
//   out += '}';
//
// Thread-safety: free functions over the caller's string; a Comma belongs to one writer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "engine/base/result.h"

namespace statefold::base {

// Appends `text` as a JSON string literal, quotes included. UTF-8 passes through unchanged (it is not validated);
// control characters, quotes and backslashes are escaped (\n \r \t \b \f by name, the rest as \u00XX).
void append_json_string(std::string& out, std::string_view text);

namespace json {

// A string literal (append_json_string).
inline void str(std::string& out, std::string_view text) { append_json_string(out, text); }

// An object member's key and its colon: `"name":`.
inline void key(std::string& out, std::string_view name) {
  append_json_string(out, name);
  out += ':';
}

// Integers in decimal.
void num(std::string& out, std::uint64_t n);
void inum(std::string& out, std::int64_t n);

// The shortest text that reads back as the same double (std::to_chars), e.g. 0.1, 1e+100, -0; `null` for a NaN or an
// infinity, which JSON cannot hold. Check std::isfinite first where writing null would be wrong.
void dbl(std::string& out, double d);

// Writes the comma between the members of an object or the elements of an array:
//   base::json::Comma comma;
//   for (const auto& s : items) { comma(out); base::json::str(out, s); }
class Comma {
 public:
  void operator()(std::string& out) {
    if (!_first) out += ',';
    _first = false;
  }
  // Nothing written yet.
  bool first() const { return _first; }

 private:
  bool _first = true;
};

// Canonical text of a parsed JSON value: object keys sorted by bytes (unless `sort_keys` is false: a JSON Schema's
// property order is the order a model writes them), no whitespace, numbers by num/inum/dbl, strings by str. The same
// value always gives the same bytes; rendered requests and pass-through parameters are hashed in this form. Fails on a
// non-finite number (JSON has none).
//
// `Value` is a JSON document value with Boost.JSON's interface (is_null()..is_object(), get_*()); a template so that
// this header names no third-party type: the modules that parse JSON instantiate it in their .cc files.
template <typename Value>
base::Result<void> canonical(std::string& out, const Value& v, bool sort_keys = true) {
  if (v.is_null()) {
    out += "null";
  } else if (v.is_bool()) {
    out += v.get_bool() ? "true" : "false";
  } else if (v.is_int64()) {
    inum(out, v.get_int64());
  } else if (v.is_uint64()) {
    num(out, v.get_uint64());
  } else if (v.is_double()) {
    if (!std::isfinite(v.get_double())) return base::make_error("not a finite number");
    dbl(out, v.get_double());
  } else if (v.is_string()) {
    str(out, v.get_string());
  } else if (v.is_array()) {
    out += '[';
    Comma comma;
    for (const auto& e : v.get_array()) {
      comma(out);
      if (auto r = canonical(out, e, sort_keys); !r) return r;
    }
    out += ']';
  } else if (v.is_object()) {
    const auto& object = v.get_object();
    std::vector<const std::remove_reference_t<decltype(*object.begin())>*> members;
    members.reserve(object.size());
    for (const auto& kv : object) members.push_back(&kv);
    if (sort_keys) {
      std::sort(members.begin(), members.end(), [](const auto* a, const auto* b) { return a->key() < b->key(); });
    }
    out += '{';
    Comma comma;
    for (const auto* kv : members) {
      comma(out);
      key(out, kv->key());
      if (auto r = canonical(out, kv->value(), sort_keys); !r) return r;
    }
    out += '}';
  }
  return {};
}

}  // namespace json
}  // namespace statefold::base
