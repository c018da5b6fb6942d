// utf8: the tokenizer takes bytes; the split pattern needs valid UTF-8. Private to the tokenizer module.
#pragma once

#include <string>
#include <string_view>

namespace statefold::tokenizer::utf8 {

// True when `text` is valid UTF-8 (no surrogates, no overlong forms, nothing above U+10FFFF).
bool valid(std::string_view text);

// Replaces each maximal ill-formed subsequence of `text` with U+FFFD (EF BF BD), the Unicode "best practice" that
// the WHATWG TextDecoder and Python's errors="replace" follow, into `out`.
void replace_invalid(std::string_view text, std::string& out);

}  // namespace statefold::tokenizer::utf8
