#include "connectors/tokenizer/utf8.h"

#include <cstdint>
#include <cstring>

namespace statefold::tokenizer::utf8 {
namespace {

// The length of the well-formed sequence at the start of `s` (non-empty), or 0 with `consumed` set to the length
// of the maximal ill-formed prefix to replace (at least 1).
std::size_t sequence(std::string_view s, std::size_t& consumed) {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char lead = b(0);
  if (lead < 0x80) return 1;
  std::size_t need = 0;
  unsigned char lo = 0x80, hi = 0xbf;  // bounds of the second byte
  if (lead >= 0xc2 && lead <= 0xdf) {
    need = 1;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    need = 2;
    if (lead == 0xe0) lo = 0xa0;
    if (lead == 0xed) hi = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    need = 3;
    if (lead == 0xf0) lo = 0x90;
    if (lead == 0xf4) hi = 0x8f;
  } else {
    consumed = 1;
    return 0;
  }
  for (std::size_t i = 1; i <= need; ++i) {
    const bool ok = i < s.size() && (i == 1 ? (b(i) >= lo && b(i) <= hi) : (b(i) >= 0x80 && b(i) <= 0xbf));
    if (!ok) {
      consumed = i;
      return 0;
    }
  }
  return need + 1;
}

}  // namespace

bool valid(std::string_view text) {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    if (i + 8 <= n) {  // eight ASCII bytes at a time
      std::uint64_t word;
      std::memcpy(&word, text.data() + i, sizeof word);
      if ((word & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    std::size_t consumed = 0;
    const std::size_t len = sequence(text.substr(i), consumed);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void replace_invalid(std::string_view text, std::string& out) {
  out.clear();
  out.reserve(text.size() + 8);
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t consumed = 0;
    const std::size_t len = sequence(text.substr(i), consumed);
    if (len > 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out.append("\xef\xbf\xbd");
      i += consumed;
    }
  }
}

}  // namespace statefold::tokenizer::utf8
