// ASCII case-insensitive text, as HTTP compares header names, auth schemes and tokens (RFC 9110): no locale. Lists
// of partitions as log lines print them. Text a client sent, made fit for a JSON answer.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace statefold::base {

inline char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ascii_lower(c);
  return out;
}

inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return ascii_lower(x) == ascii_lower(y); });
}

inline bool istarts_with(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

// "0,2,5"
inline std::string join(const std::vector<std::int32_t>& numbers) {
  std::string out;
  for (std::int32_t n : numbers) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(n);
  }
  return out;
}

// `text` with each byte that is not part of well-formed UTF-8 replaced by U+FFFD: error messages echo paths and
// ids as the client sent them, and the answer must stay valid JSON.
std::string valid_utf8(std::string_view text);

}  // namespace statefold::base
