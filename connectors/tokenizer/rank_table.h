// rank_table: one encoding's mergeable ranks (token bytes <-> rank), loaded from the binary file that
// ranks/convert.mjs writes at build time. Private to the tokenizer module.
//
// Immutable after load: lookups may run on any number of threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"

namespace statefold::tokenizer {

inline constexpr std::uint32_t kNoRank = 0xffffffffu;

class RankTable {
 public:
  // Reads `file` and checks it: the encoding name it declares, `expected_tokens` tokens with ranks 0..n-1 in
  // order, no byte string twice, and every single byte present (so any input can be encoded).
  static base::Result<RankTable> load(const std::filesystem::path& file, std::string_view expected_name,
                                      std::size_t expected_tokens);
  // The same checks over an in-memory image of such a file (tests).
  static base::Result<RankTable> parse(std::string_view image, std::string_view expected_name,
                                       std::size_t expected_tokens);

  // The rank of exactly these bytes, or kNoRank.
  std::uint32_t find(std::string_view bytes) const {
    if (bytes.size() == 2) {
      return _pair_rank[static_cast<unsigned char>(bytes[0]) << 8 | static_cast<unsigned char>(bytes[1])];
    }
    if (bytes.size() == 1) return _byte_rank[static_cast<unsigned char>(bytes[0])];
    if (bytes.size() > _longest) return kNoRank;
    return find_hashed(bytes);
  }
  // The bytes of `rank`; empty when the rank is not in the table.
  std::string_view bytes(std::uint32_t rank) const {
    if (rank >= size()) return {};
    return std::string_view(_arena).substr(_offsets[rank], _offsets[rank + 1] - _offsets[rank]);
  }
  std::size_t size() const { return _offsets.empty() ? 0 : _offsets.size() - 1; }

 private:
  // One slot of the hash table of tokens of 3 bytes and more. The first 8 bytes are kept in the slot so that
  // the common short tokens are matched without touching the arena.
  struct Slot {
    std::uint64_t head = 0;      // the first min(8, size) bytes, zero-padded
    std::uint32_t rank = 0;      // rank + 1; 0 marks an empty slot
    std::uint32_t tag_size = 0;  // the hash's top 24 bits << 8 | size (sizes are at most 255)
  };

  RankTable() = default;
  std::uint32_t find_hashed(std::string_view bytes) const;
  static std::uint64_t head_of(std::string_view bytes);

  std::string _arena;                   // every token's bytes, by rank
  std::vector<std::uint32_t> _offsets;  // rank -> start in _arena; one past the last at the end
  std::vector<Slot> _slots;             // open addressing, linear probing
  std::uint64_t _mask = 0;
  std::size_t _longest = 0;                // no token is longer: longer bytes are not looked up
  std::vector<std::uint32_t> _pair_rank;   // the 65,536 two-byte strings, direct (fits in L2)
  std::uint32_t _byte_rank[256] = {};
};

// The hash the table uses (exposed for the tests of its distribution); any bytes, any length.
std::uint64_t hash_bytes(std::string_view bytes);

}  // namespace statefold::tokenizer
