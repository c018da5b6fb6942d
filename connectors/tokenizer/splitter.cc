#include "connectors/tokenizer/splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <new>
#include <stdexcept>

namespace statefold::tokenizer {
namespace {

// Unicode White_Space, the meaning of \s in tiktoken's regex engine, as the inside of a character class.
constexpr std::string_view kWhiteSpace =
    R"(\t\n\x{0B}\f\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})";

// Per-thread PCRE2 match state, shared by every Splitter on the thread (match data does not belong to a pattern).
struct ThreadMatch {
  pcre2_match_data* data = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* stack = nullptr;
  ThreadMatch() {
    data = pcre2_match_data_create(4, nullptr);
    context = pcre2_match_context_create(nullptr);
    // Possessive and single-character repeats keep the JIT's frames small; 1 MiB leaves a wide margin for the
    // few backtracking alternatives (\s+(?!\S) over a long run of spaces).
    stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
    if (data == nullptr || context == nullptr || stack == nullptr) throw std::bad_alloc();
    pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatch() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
  ThreadMatch(const ThreadMatch&) = delete;
  ThreadMatch& operator=(const ThreadMatch&) = delete;
};

ThreadMatch& thread_match() {
  thread_local ThreadMatch m;
  return m;
}

}  // namespace

struct Splitter::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

Splitter::Splitter(std::unique_ptr<Code> code) : _code(std::move(code)) {}
Splitter::Splitter(Splitter&&) noexcept = default;
Splitter& Splitter::operator=(Splitter&&) noexcept = default;
Splitter::~Splitter() = default;

bool Splitter::jit() const { return _code->jit; }

std::string Splitter::translate(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWhiteSpace) + "]";
      } else if (e == 'S') {
        throw std::invalid_argument("\\S inside a character class is not supported");
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a leading ] is literal
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

base::Result<Splitter> Splitter::compile(std::string_view pattern) {
  const std::string translated = translate(pattern);
  int error = 0;
  PCRE2_SIZE error_at = 0;
  // UTF + UCP: \p{..} and case folding are Unicode's. DOLLAR_ENDONLY: $ is the end of the text only, as in
  // tiktoken's engine (cl100k's \s++$ must not match before a final newline).
  auto code = std::make_unique<Code>();
  code->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &error_at, nullptr);
  if (code->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    return base::make_error("split pattern does not compile at " + std::to_string(error_at) + ": " +
                            reinterpret_cast<const char*>(message));
  }
  code->jit = pcre2_jit_compile(code->code, PCRE2_JIT_COMPLETE) == 0;  // no JIT: the interpreter, same results
  return Splitter(std::move(code));
}

bool Splitter::next(std::string_view text, std::size_t at, std::size_t& begin, std::size_t& end) const {
  if (at >= text.size()) return false;
  ThreadMatch& m = thread_match();
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  // The text was checked once (utf8::valid): PCRE2 would otherwise check all of it again on every call.
  const int rc = _code->jit ? pcre2_jit_match(_code->code, subject, text.size(), at, 0, m.data, m.context)
                            : pcre2_match(_code->code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, m.data,
                                          m.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof message);
    // The patterns have no nested unbounded backtracking, so this is a broken invariant, not bad input.
    throw std::runtime_error(std::string("tokenizer split pattern failed: ") +
                             reinterpret_cast<const char*>(message));
  }
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(m.data);
  begin = ovector[0];
  end = ovector[1];
  if (end == begin) {
    // The encodings' patterns never match empty. Should another one, skip a character rather than loop forever.
    std::size_t after = begin + 1;
    while (after < text.size() && (static_cast<unsigned char>(text[after]) & 0xc0) == 0x80) ++after;
    return next(text, after, begin, end);
  }
  return true;
}

}  // namespace statefold::tokenizer
