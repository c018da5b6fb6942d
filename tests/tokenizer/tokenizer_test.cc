// The tokenizer gives tiktoken's token ids: known encodings of varied text for o200k_base and cl100k_base (from
// js-tiktoken, fixture.inc, and from tiktoken's own tests), count == encode().size(), decode round trips, the two
// merge algorithms agreeing, ill-formed UTF-8 and rank table checks (the Anthropic margin:
// tests/providers/anthropic_test.cc).
#include "connectors/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "connectors/tokenizer/bpe.h"
#include "connectors/tokenizer/rank_table.h"
#include "connectors/tokenizer/splitter.h"
#include "connectors/tokenizer/utf8.h"

namespace statefold::tokenizer {
namespace {

using Ids = std::vector<std::uint32_t>;

struct FixtureCase {
  const char* name;
  std::string_view bytes;
  int repeat;
  Ids o200k;
  Ids cl100k;
};

const std::vector<FixtureCase>& fixture() {
  static const std::vector<FixtureCase> cases = {
#include "tokenizer/fixture.inc"
  };
  return cases;
}

std::string repeat(std::string_view unit, int times) {
  std::string s;
  for (int i = 0; i < times; ++i) s += unit;
  return s;
}

const Tokenizer& get(Encoding encoding) {
  static const auto load = [](Encoding e) {
    auto loaded = Tokenizer::load(e);
    if (!loaded.ok()) throw std::runtime_error(loaded.error().message);
    return *loaded;
  };
  static const std::shared_ptr<const Tokenizer> o200k = load(Encoding::o200k_base);
  static const std::shared_ptr<const Tokenizer> cl100k = load(Encoding::cl100k_base);
  return encoding == Encoding::o200k_base ? *o200k : *cl100k;
}

// What encode() reads: the text with ill-formed UTF-8 replaced.
std::string repaired(std::string_view text) {
  std::string out;
  utf8::replace_invalid(text, out);
  return out;
}

class BothEncodings : public ::testing::TestWithParam<Encoding> {};
INSTANTIATE_TEST_SUITE_P(Tokenizer, BothEncodings, ::testing::Values(Encoding::o200k_base, Encoding::cl100k_base),
                         [](const auto& p) { return std::string(encoding_name(p.param)); });

TEST_P(BothEncodings, MatchesJsTiktokenOnVariedText) {
  const Tokenizer& tok = get(GetParam());
  ASSERT_GT(fixture().size(), 60u);
  for (const FixtureCase& c : fixture()) {
    const std::string text = repeat(c.bytes, c.repeat);
    const Ids& expected = GetParam() == Encoding::o200k_base ? c.o200k : c.cl100k;
    EXPECT_EQ(tok.encode(text), expected) << c.name;
    EXPECT_EQ(tok.count(text), expected.size()) << c.name;
    auto decoded = tok.decode(expected);
    ASSERT_TRUE(decoded.ok()) << c.name;
    EXPECT_EQ(*decoded, repaired(text)) << c.name;
  }
}

// tiktoken's tests/test_encoding.py and test_simple_public.py.
TEST(Tokenizer, MatchesTiktokensOwnTests) {
  const Tokenizer& cl = get(Encoding::cl100k_base);
  EXPECT_EQ(cl.encode("hello world"), (Ids{15339, 1917}));
  EXPECT_EQ(cl.encode("rer"), (Ids{38149}));
  EXPECT_EQ(cl.encode("'rer"), (Ids{2351, 81}));
  EXPECT_EQ(cl.encode("today\n "), (Ids{31213, 198, 220}));
  EXPECT_EQ(cl.encode("today\n \n"), (Ids{31213, 27907}));
  EXPECT_EQ(cl.encode("today\n  \n"), (Ids{31213, 14211}));
  // U+0085 is White_Space for tiktoken (not for JavaScript's \s, hence not in fixture.inc): " ", "\u0085", "0".
  EXPECT_EQ(cl.encode(" \u00850"), (Ids{220, 126, 227, 15}));
  EXPECT_EQ(cl.encode("\U0001F44D"), (Ids{9468, 239, 235}));
  EXPECT_EQ(get(Encoding::o200k_base).encode("hello world"), (Ids{24912, 2375}));
}

TEST_P(BothEncodings, CatastrophicallyRepetitiveInputRoundTrips) {
  const Tokenizer& tok = get(GetParam());
  for (std::string_view unit : {"^", "0", "a", "'s", " ", "\n", "\xe4\xb8\xad", "A"}) {
    std::string big = repeat(unit, 10'000);
    for (int variant = 0; variant < 3; ++variant) {
      if (variant == 1) big = " " + big;
      if (variant == 2) big += "\n";
      const Ids ids = tok.encode(big);
      EXPECT_EQ(tok.count(big), ids.size()) << unit << " variant " << variant;
      auto decoded = tok.decode(ids);
      ASSERT_TRUE(decoded.ok());
      EXPECT_EQ(*decoded, big) << unit << " variant " << variant;
    }
  }
}

// Random text from fragments that exercise every alternative of the patterns.
std::string random_text(std::mt19937_64& rng, std::size_t fragments) {
  static const std::vector<std::string_view> pool = {
      "a", "Z", "hello", " world", "THE", "camelCase", "'s", "'LL", "'", "0", "42", "31415926", " ", "  ", "\t",
      "\n", "\r\n", "\n\n", "\u00a0", "\u3000", "\u0085", "\u2028", ".", ",", "!?", "/", "//", "{", "}", "->",
      "==", "\"", "\\", "_", "-", "caf\u00e9", "\u00c9t\u00e9", "e\u0301", "\u4e2d\u6587", "\u65e5\u672c\u8a9e",
      "\ud55c", "\u041f\u0440\u0438", "\u0645\u0631\u062d", "\u0928\u092e", "\U0001F600", "\U0001F44D\U0001F3FD",
      "\u2764\ufe0f", "\u200d", "<|endoftext|>", "\u017f", "\ufeff"};
  std::uniform_int_distribution<std::size_t> pick(0, pool.size() - 1);
  std::string s;
  for (std::size_t i = 0; i < fragments; ++i) s += pool[pick(rng)];
  return s;
}

TEST_P(BothEncodings, CountEqualsEncodeSizeAndDecodeRoundTripsOnRandomText) {
  const Tokenizer& tok = get(GetParam());
  std::mt19937_64 rng(20261127);
  std::uniform_int_distribution<std::size_t> length(0, 120);
  for (int i = 0; i < 2000; ++i) {
    const std::string text = random_text(rng, length(rng));
    const Ids ids = tok.encode(text);
    ASSERT_EQ(tok.count(text), ids.size()) << text;
    auto decoded = tok.decode(ids);
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(*decoded, text);
  }
}

TEST_P(BothEncodings, RandomBytesEncodeAsTheirRepairedText) {
  const Tokenizer& tok = get(GetParam());
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int> byte(0, 255), length(0, 64);
  for (int i = 0; i < 2000; ++i) {
    std::string bytes;
    for (int n = length(rng); n > 0; --n) bytes += static_cast<char>(byte(rng));
    const Ids ids = tok.encode(bytes);
    ASSERT_EQ(tok.count(bytes), ids.size());
    ASSERT_EQ(ids, tok.encode(repaired(bytes)));
    auto decoded = tok.decode(ids);
    ASSERT_TRUE(decoded.ok());
    ASSERT_EQ(*decoded, repaired(bytes));
  }
}

TEST_P(BothEncodings, ScanAndHeapMergesAgree) {
  const Tokenizer& tok = get(GetParam());
  auto ranks = RankTable::load(default_ranks_dir() / (std::string(encoding_name(GetParam())) + ".ranks"),
                               encoding_name(GetParam()), tok.vocabulary_size());
  ASSERT_TRUE(ranks.ok()) << ranks.error().message;
  std::mt19937_64 rng(11);
  std::uniform_int_distribution<std::size_t> fragments(1, 60);
  for (int i = 0; i < 1000; ++i) {
    // Whole texts as one piece: longer and stranger than any pattern match, so both paths work hard.
    const std::string piece =
        i % 3 == 0 ? repeat("ab", static_cast<int>(fragments(rng))) : random_text(rng, fragments(rng));
    if (piece.empty()) continue;
    Ids scan, heap;
    bpe::encode_scan(*ranks, piece, scan);
    bpe::encode_heap(*ranks, piece, heap);
    ASSERT_EQ(scan, heap) << piece;
    ASSERT_EQ(bpe::count(*ranks, piece), scan.size());
  }
}

TEST_P(BothEncodings, ConcurrentCallersAgree) {
  const Tokenizer& tok = get(GetParam());
  std::mt19937_64 rng(3);
  std::vector<std::string> texts;
  std::vector<std::size_t> counts;
  for (int i = 0; i < 50; ++i) {
    texts.push_back(random_text(rng, 200));
    counts.push_back(tok.encode(texts.back()).size());
  }
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (std::size_t t = 0; t < mismatches.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        for (std::size_t i = 0; i < texts.size(); ++i) {
          if (tok.count(texts[i]) != counts[i] || tok.encode(texts[i]).size() != counts[i]) ++mismatches[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int m : mismatches) EXPECT_EQ(m, 0);
}

TEST_P(BothEncodings, DecodeRefusesIdsOutsideTheVocabulary) {
  const Tokenizer& tok = get(GetParam());
  const auto n = static_cast<std::uint32_t>(tok.vocabulary_size());
  EXPECT_EQ(n, GetParam() == Encoding::o200k_base ? 199998u : 100256u);
  EXPECT_TRUE(tok.decode(Ids{0, n - 1}).ok());
  const Ids special{GetParam() == Encoding::o200k_base ? 199999u : 100257u};  // <|endoftext|>
  EXPECT_FALSE(tok.decode(special).ok());
  EXPECT_FALSE(tok.decode(Ids{n}).ok());
  EXPECT_EQ(*tok.decode(Ids{}), "");
}

TEST(Tokenizer, EncodingNames) {
  EXPECT_EQ(encoding_from_name("o200k_base"), Encoding::o200k_base);
  EXPECT_EQ(encoding_from_name("cl100k_base"), Encoding::cl100k_base);
  EXPECT_EQ(encoding_from_name("p50k_base"), std::nullopt);
  EXPECT_EQ(encoding_from_name(""), std::nullopt);
  EXPECT_EQ(encoding_name(Encoding::o200k_base), "o200k_base");
  EXPECT_EQ(encoding_for_model("gpt-4o-mini"), Encoding::o200k_base);
  EXPECT_EQ(encoding_for_model("gpt-4.1-nano"), Encoding::o200k_base);
  EXPECT_EQ(encoding_for_model("gpt-5"), Encoding::o200k_base);
  EXPECT_EQ(encoding_for_model("o3-mini"), Encoding::o200k_base);
  EXPECT_EQ(encoding_for_model("claude-sonnet-4-5"), Encoding::o200k_base);
  EXPECT_EQ(encoding_for_model("gpt-4-turbo"), Encoding::cl100k_base);
  EXPECT_EQ(encoding_for_model("gpt-3.5-turbo"), Encoding::cl100k_base);
  EXPECT_EQ(encoding_for_model("text-embedding-3-small"), Encoding::cl100k_base);
  EXPECT_EQ(encoding_for_model("llama-3"), std::nullopt);
}

TEST(Tokenizer, RanksDirectoryFromTheEnvironment) {
  const std::filesystem::path built = default_ranks_dir();
  ::setenv("STATEFOLD_TOKENIZER_RANKS", "/nonexistent/ranks", 1);
  EXPECT_EQ(default_ranks_dir(), "/nonexistent/ranks");
  auto missing = Tokenizer::load(Encoding::o200k_base);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("/nonexistent/ranks/o200k_base.ranks"), std::string::npos);
  ::setenv("STATEFOLD_TOKENIZER_RANKS", "", 1);
  EXPECT_EQ(default_ranks_dir(), built);
  ::unsetenv("STATEFOLD_TOKENIZER_RANKS");
  EXPECT_EQ(default_ranks_dir(), built);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(Tokenizer, RankTableRefusesTheWrongOrABrokenFile) {
  const std::string cl100k = read_file(default_ranks_dir() / "cl100k_base.ranks");
  ASSERT_FALSE(cl100k.empty());
  EXPECT_TRUE(RankTable::parse(cl100k, "cl100k_base", 100256).ok());
  // A table under the other encoding's name (say, files swapped in STATEFOLD_TOKENIZER_RANKS).
  auto swapped = RankTable::parse(cl100k, "o200k_base", 199998);
  ASSERT_FALSE(swapped.ok());
  EXPECT_NE(swapped.error().message.find("holds cl100k_base"), std::string::npos);
  EXPECT_FALSE(RankTable::parse(cl100k.substr(0, cl100k.size() - 1), "cl100k_base", 100256).ok());
  EXPECT_FALSE(RankTable::parse(cl100k + "x", "cl100k_base", 100256).ok());
  EXPECT_FALSE(RankTable::parse("", "cl100k_base", 100256).ok());
  EXPECT_FALSE(RankTable::parse("SFRANKS1", "cl100k_base", 100256).ok());
  std::string bad_magic = cl100k;
  bad_magic[0] = 'X';
  EXPECT_FALSE(RankTable::parse(bad_magic, "cl100k_base", 100256).ok());
}

TEST(Tokenizer, RankTableLookups) {
  auto table = RankTable::load(default_ranks_dir() / "o200k_base.ranks", "o200k_base", 199998);
  ASSERT_TRUE(table.ok()) << table.error().message;
  for (std::uint32_t rank = 0; rank < table->size(); rank += 97) {
    EXPECT_EQ(table->find(table->bytes(rank)), rank);
  }
  EXPECT_EQ(table->find(""), kNoRank);
  EXPECT_EQ(table->find("this is surely not one token at all"), kNoRank);
  EXPECT_EQ(table->bytes(199998), "");
}

TEST(Tokenizer, Utf8Repair) {
  EXPECT_TRUE(utf8::valid(""));
  EXPECT_TRUE(utf8::valid("plain ascii, longer than eight bytes"));
  EXPECT_TRUE(utf8::valid("\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
  for (std::string_view bad : {"\x80", "\xc0\xaf", "\xc3", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                               "\xf5\x80\x80\x80", "\xff", "abcdefgh\xe4\xb8"}) {
    EXPECT_FALSE(utf8::valid(bad)) << bad;
  }
  // Maximal subparts: a truncated sequence is one U+FFFD; bytes that can never start one are one each.
  EXPECT_EQ(repaired("a\xe4\xb8z"), "a\xef\xbf\xbdz");
  EXPECT_EQ(repaired("\xc0\xaf"), "\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(repaired("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(repaired("\xf0\x9f\x98"), "\xef\xbf\xbd");
  EXPECT_EQ(repaired("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
}

TEST(Tokenizer, SplitPatternUsesUnicodeWhiteSpace) {
  const std::string translated = Splitter::translate(R"(\s+(?!\S)|[^\s\p{L}]+)");
  EXPECT_EQ(translated.find("\\s"), std::string::npos);
  EXPECT_EQ(translated.find("\\S"), std::string::npos);
  EXPECT_NE(translated.find("\\x{85}"), std::string::npos);
  auto splitter = Splitter::compile(R"(\s+(?!\S)|\s+|\S+)");
  ASSERT_TRUE(splitter.ok()) << splitter.error().message;
  std::vector<std::string> pieces;
  splitter->split("a \u0085\u00a0b", [&](std::string_view p) { pieces.emplace_back(p); });
  EXPECT_EQ(pieces, (std::vector<std::string>{"a", " \u0085", "\u00a0", "b"}));
  pieces.clear();  // U+180E is no longer White_Space (Unicode 6.3), though PCRE2 10.42's own \s matches it
  splitter->split("x\u180ey z", [&](std::string_view p) { pieces.emplace_back(p); });
  EXPECT_EQ(pieces, (std::vector<std::string>{"x\u180ey", " ", "z"}));
  EXPECT_FALSE(Splitter::compile("(unclosed").ok());
}

}  // namespace
}  // namespace statefold::tokenizer
