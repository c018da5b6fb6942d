// splitter: the encodings' split patterns (tiktoken's regexes), compiled with PCRE2. Private to the tokenizer
// module; PCRE2's types stay in splitter.cc.
//
// Thread-safe: the compiled pattern is immutable and the match data is per thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "engine/base/result.h"

namespace statefold::tokenizer {

class Splitter {
 public:
  // `pattern` is tiktoken's pat_str, verbatim. \s and \S are rewritten to Unicode White_Space, which is what
  // tiktoken's Rust regex means by them: PCRE2 10.42's \s under UCP also matches U+180E, a format character since
  // Unicode 6.3, and which characters it matches has changed across PCRE2 versions.
  static base::Result<Splitter> compile(std::string_view pattern);
  Splitter(Splitter&&) noexcept;
  Splitter& operator=(Splitter&&) noexcept;
  ~Splitter();

  // Calls on_piece(std::string_view) for each match, left to right, as tiktoken's find_iter over the whole text.
  // `text` must be valid UTF-8 (utf8::valid).
  template <typename OnPiece>
  void split(std::string_view text, OnPiece&& on_piece) const {
    std::size_t at = 0;
    std::size_t begin = 0, end = 0;
    while (next(text, at, begin, end)) {
      on_piece(text.substr(begin, end - begin));
      at = end;
    }
  }

  // What compile() hands to PCRE2 (tests, diagnostics).
  static std::string translate(std::string_view pattern);
  bool jit() const;

 private:
  struct Code;
  explicit Splitter(std::unique_ptr<Code> code);
  // The next match at or after `at`; false at the end of the text.
  bool next(std::string_view text, std::size_t at, std::size_t& begin, std::size_t& end) const;

  std::unique_ptr<Code> _code;
};

}  // namespace statefold::tokenizer
