// tokenizer: exact token counts for OpenAI's BPE encodings o200k_base and cl100k_base, the same token ids as
// tiktoken's encode_ordinary (special tokens such as <|endoftext|> are ordinary text). Pure once loaded: no I/O,
// no clocks. See docs/connectors.md, "Tokenizer".
//
//   auto loaded = tokenizer::Tokenizer::load(tokenizer::Encoding::o200k_base);
//   if (!loaded.ok()) return loaded.error();            // e.g. the rank tables were not built
//   std::shared_ptr<const tokenizer::Tokenizer> tok = *loaded;
//   std::size_t n = tok->count("Hello, world!");         // 4
//
// Thread-safety: a loaded Tokenizer is immutable; all its methods may run on any number of threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"

namespace statefold::tokenizer {

enum class Encoding : std::uint8_t { o200k_base, cl100k_base };

std::string_view encoding_name(Encoding encoding);
// "o200k_base" or "cl100k_base"; nullopt for anything else.
std::optional<Encoding> encoding_from_name(std::string_view name);
// The encoding OpenAI uses for a model name (gpt-4o, gpt-4.1, gpt-5, o1, o3, o4-mini... -> o200k_base; gpt-4,
// gpt-3.5-turbo, text-embedding-3-* -> cl100k_base), by prefix. Models without a public tokenizer (claude-*)
// map to o200k_base, to be used with a margin (see below). nullopt for names it does not know.
std::optional<Encoding> encoding_for_model(std::string_view model);

// Where load() looks by default: $STATEFOLD_TOKENIZER_RANKS if set and non-empty, else the directory the build
// wrote the tables to (<build>/connectors/tokenizer/ranks).
std::filesystem::path default_ranks_dir();

class Tokenizer {
 public:
  // Reads <ranks_dir>/<encoding>.ranks and compiles the split pattern: tens of milliseconds, about 11 MB in memory
  // for o200k_base (6 MB for cl100k_base). Load once and share: the result is immutable. Fails when the file is
  // missing or not the expected table.
  static base::Result<std::shared_ptr<const Tokenizer>> load(
      Encoding encoding, const std::filesystem::path& ranks_dir = default_ranks_dir());

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  Encoding encoding() const;
  // Number of ordinary tokens (ranks 0..n-1); special tokens are not counted.
  std::size_t vocabulary_size() const;

  // Token ids of `text`, which is UTF-8: each ill-formed sequence counts as U+FFFD (as a JSON decoder or
  // Python's errors="replace" would have made it), so any bytes encode.
  std::vector<std::uint32_t> encode(std::string_view text) const;
  // encode(text).size(), without building the vector; no allocation once the calling thread is warm.
  std::size_t count(std::string_view text) const;
  // The bytes of the tokens, concatenated (a token may end inside a UTF-8 sequence). Fails on an id that is not
  // an ordinary token.
  base::Result<std::string> decode(std::span<const std::uint32_t> tokens) const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<const Impl> impl);
  std::unique_ptr<const Impl> _impl;
};

// ceil(count * margin). Providers whose tokenizer is not public (Anthropic) are budgeted with o200k_base counts
// times a margin of their own (providers::Provider::token_margin), so that a context cut to fit errs on the safe side.
std::size_t with_margin(std::size_t count, double margin);

// The margin corrected by what the provider reports: each receipt gives the input tokens the provider billed and
// the o200k count statefold computed for the same request, and the margin follows their ratio (an exponential
// average, weight 1/4 for the newest, plus 2 % headroom, kept within [1, 2]). Until the first receipt it is the
// initial margin. Small requests (under 256 estimated tokens) are ignored: fixed per-request overhead would
// dominate their ratio.
//
// Not thread-safe: one per route, owned by whoever handles that route's receipts.
class MarginCalibration {
 public:
  explicit MarginCalibration(double initial_margin);
  void observe(std::size_t estimated_tokens, std::size_t reported_tokens);
  double margin() const { return _margin; }
  std::size_t apply(std::size_t count) const { return with_margin(count, _margin); }
  std::size_t observations() const { return _observations; }

 private:
  double _margin;
  double _ratio = 0;
  std::size_t _observations = 0;
};

}  // namespace statefold::tokenizer
