// ASCII case-insensitive text, as HTTP compares header names, auth schemes and tokens (RFC 9110): no locale. And
// lists of partitions as log lines print them.
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

}  // namespace statefold::base
