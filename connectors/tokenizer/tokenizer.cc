#include "connectors/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>

#include "connectors/tokenizer/bpe.h"
#include "connectors/tokenizer/rank_table.h"
#include "connectors/tokenizer/splitter.h"
#include "connectors/tokenizer/utf8.h"

#ifndef STATEFOLD_TOKENIZER_RANKS_DIR
#error "STATEFOLD_TOKENIZER_RANKS_DIR is set by connectors/tokenizer/CMakeLists.txt"
#endif

namespace statefold::tokenizer {
namespace {

struct Spec {
  Encoding encoding;
  std::string_view name;
  std::size_t tokens;  // ordinary tokens: ranks 0..tokens-1
  // tiktoken_ext/openai_public.py's pat_str, verbatim (Splitter rewrites \s for PCRE2).
  std::string_view pattern;
};

constexpr std::array<Spec, 2> kSpecs{{
    {Encoding::o200k_base, "o200k_base", 199998,
     R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
     R"(|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?)"
     R"(|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
    {Encoding::cl100k_base, "cl100k_base", 100256,
     R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+)"
     R"(|\s++$|\s*[\r\n]|\s+(?!\S)|\s)"},
}};

const Spec& spec(Encoding encoding) { return kSpecs[static_cast<std::size_t>(encoding)]; }

// Per-thread buffer for text that was not valid UTF-8.
std::string& repaired_buffer() {
  thread_local std::string buffer;
  return buffer;
}

}  // namespace

struct Tokenizer::Impl {
  Encoding encoding;
  RankTable ranks;
  Splitter splitter;

  // Calls on_piece for each piece of `text` after making it valid UTF-8.
  template <typename OnPiece>
  void pieces(std::string_view text, OnPiece&& on_piece) const {
    if (utf8::valid(text)) {
      splitter.split(text, on_piece);
      return;
    }
    std::string& repaired = repaired_buffer();
    utf8::replace_invalid(text, repaired);
    splitter.split(repaired, on_piece);
    if (repaired.capacity() > (std::size_t{1} << 20)) std::string().swap(repaired);  // keep no big buffer per thread
  }
};

std::string_view encoding_name(Encoding encoding) { return spec(encoding).name; }

std::optional<Encoding> encoding_from_name(std::string_view name) {
  for (const Spec& s : kSpecs) {
    if (s.name == name) return s.encoding;
  }
  return std::nullopt;
}

std::optional<Encoding> encoding_for_model(std::string_view model) {
  // Longest prefixes first where one contains another (gpt-4o before gpt-4).
  constexpr std::array<std::pair<std::string_view, Encoding>, 16> kPrefixes{{
      {"gpt-4o", Encoding::o200k_base},
      {"gpt-4.1", Encoding::o200k_base},
      {"gpt-4.5", Encoding::o200k_base},
      {"gpt-5", Encoding::o200k_base},
      {"gpt-oss", Encoding::o200k_base},
      {"chatgpt-4o", Encoding::o200k_base},
      {"o1", Encoding::o200k_base},
      {"o3", Encoding::o200k_base},
      {"o4", Encoding::o200k_base},
      {"claude", Encoding::o200k_base},  // no public tokenizer: o200k with the provider's margin
      {"gpt-4", Encoding::cl100k_base},
      {"gpt-3.5", Encoding::cl100k_base},
      {"gpt-35", Encoding::cl100k_base},
      {"text-embedding-3", Encoding::cl100k_base},
      {"text-embedding-ada-002", Encoding::cl100k_base},
      {"davinci-002", Encoding::cl100k_base},
  }};
  for (const auto& [prefix, encoding] : kPrefixes) {
    if (model.starts_with(prefix)) return encoding;
  }
  return std::nullopt;
}

std::filesystem::path default_ranks_dir() {
  if (const char* env = std::getenv("STATEFOLD_TOKENIZER_RANKS"); env != nullptr && *env != '\0') return env;
  return STATEFOLD_TOKENIZER_RANKS_DIR;
}

base::Result<std::shared_ptr<const Tokenizer>> Tokenizer::load(Encoding encoding,
                                                               const std::filesystem::path& ranks_dir) {
  const Spec& s = spec(encoding);
  auto ranks = RankTable::load(ranks_dir / (std::string(s.name) + ".ranks"), s.name, s.tokens);
  if (!ranks.ok()) return ranks.error();
  auto splitter = Splitter::compile(s.pattern);
  if (!splitter.ok()) return base::make_error(std::string(s.name) + ": " + splitter.error().message);
  auto impl = std::make_unique<const Impl>(Impl{encoding, std::move(ranks).value(), std::move(splitter).value()});
  return std::shared_ptr<const Tokenizer>(new Tokenizer(std::move(impl)));
}

Tokenizer::Tokenizer(std::unique_ptr<const Impl> impl) : _impl(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

Encoding Tokenizer::encoding() const { return _impl->encoding; }
std::size_t Tokenizer::vocabulary_size() const { return _impl->ranks.size(); }

std::vector<std::uint32_t> Tokenizer::encode(std::string_view text) const {
  std::vector<std::uint32_t> out;
  out.reserve(text.size() / 4 + 1);
  const RankTable& ranks = _impl->ranks;
  _impl->pieces(text, [&](std::string_view piece) {
    if (const std::uint32_t rank = ranks.find(piece); rank != kNoRank) {
      out.push_back(rank);
    } else {
      bpe::encode(ranks, piece, out);
    }
  });
  return out;
}

std::size_t Tokenizer::count(std::string_view text) const {
  std::size_t n = 0;
  const RankTable& ranks = _impl->ranks;
  _impl->pieces(text, [&](std::string_view piece) {
    n += ranks.find(piece) != kNoRank ? 1 : bpe::count(ranks, piece);
  });
  return n;
}

base::Result<std::string> Tokenizer::decode(std::span<const std::uint32_t> tokens) const {
  std::string out;
  for (const std::uint32_t token : tokens) {
    const std::string_view bytes = _impl->ranks.bytes(token);
    if (bytes.empty()) {
      return base::make_error("token " + std::to_string(token) + " is not an ordinary " +
                              std::string(spec(_impl->encoding).name) + " token");
    }
    out.append(bytes);
  }
  return out;
}

std::size_t with_margin(std::size_t count, double margin) {
  const double scaled = static_cast<double>(count) * margin;
  // Up, except where the product is a whole number but for binary rounding (100 * 1.1 is 110.00000000000001).
  const double nearest = std::round(scaled);
  if (std::abs(scaled - nearest) <= 1e-9 * std::max(1.0, scaled)) return static_cast<std::size_t>(nearest);
  return static_cast<std::size_t>(std::ceil(scaled));
}

MarginCalibration::MarginCalibration(double initial_margin) : _margin(initial_margin) {}

void MarginCalibration::observe(std::size_t estimated_tokens, std::size_t reported_tokens) {
  constexpr std::size_t kMinEstimate = 256;
  constexpr double kWeight = 0.25, kHeadroom = 1.02, kMin = 1.0, kMax = 2.0;
  if (estimated_tokens < kMinEstimate || reported_tokens == 0) return;
  const double ratio = static_cast<double>(reported_tokens) / static_cast<double>(estimated_tokens);
  _ratio = _observations == 0 ? ratio : _ratio + kWeight * (ratio - _ratio);
  ++_observations;
  _margin = std::min(kMax, std::max(kMin, _ratio * kHeadroom));
}

}  // namespace statefold::tokenizer
