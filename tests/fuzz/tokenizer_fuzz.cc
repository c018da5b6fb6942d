// libFuzzer: the BPE tokenizer on arbitrary bytes (ill-formed UTF-8 included): count() equals encode().size() and
// the tokens decode back to the input when it is valid UTF-8.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "connectors/tokenizer/tokenizer.h"

namespace {

const statefold::tokenizer::Tokenizer& tokenizer() {
  static const auto loaded = statefold::tokenizer::Tokenizer::load(statefold::tokenizer::Encoding::o200k_base);
  if (!loaded.ok()) __builtin_trap();  // the rank tables are built with the project
  return **loaded;
}

// Well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF): what round-trips unchanged.
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    const std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b >> 6) != 2) return false;
      cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto& t = tokenizer();
  const auto tokens = t.encode(text);
  if (t.count(text) != tokens.size()) __builtin_trap();
  if (valid_utf8(text)) {
    auto back = t.decode(tokens);
    if (!back.ok() || *back != text) __builtin_trap();
  }
  return 0;
}
