#include "engine/base/json_writer.h"

#include <array>
#include <charconv>
#include <cmath>

namespace statefold::base {

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;  // UTF-8 sequences pass through unchanged
    out.append(text.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xf];
    }
  }
  out.append(text.data() + start, text.size() - start);
  out += '"';
}

namespace json {
namespace {

template <typename Number>
void append_number(std::string& out, Number n) {
  std::array<char, 32> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), r.ptr);
}

}  // namespace

void num(std::string& out, std::uint64_t n) { append_number(out, n); }

void inum(std::string& out, std::int64_t n) { append_number(out, n); }

void dbl(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  append_number(out, d);
}

}  // namespace json
}  // namespace statefold::base
