// bpe: tiktoken's byte pair merge of one piece (a match of the split pattern) into ranks. Private to the
// tokenizer module.
//
// The rule (tiktoken's _byte_pair_merge): start from single bytes; repeatedly merge the adjacent pair whose
// concatenation has the lowest rank, the leftmost on ties, until no adjacent pair is in the table. Short pieces use
// tiktoken's quadratic scan over a small array; long ones (a run of 10,000 identical letters is one piece) use a
// heap with lazy deletion, which makes the same merges in the same order in O(n log n) (measured: from 32
// bytes on, the heap is the faster; CJK text makes such pieces, having no spaces).
//
// Thread-safe: the scratch space is per thread.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "connectors/tokenizer/rank_table.h"

namespace statefold::tokenizer::bpe {

// Pieces at least this long take the heap path.
inline constexpr std::size_t kHeapThreshold = 32;

// Appends the ranks of `piece` (non-empty) to `out`.
void encode(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out);
// The number of ranks encode() would append, without building them.
std::size_t count(const RankTable& table, std::string_view piece);

// The two algorithms, whatever the piece's length (tests check they agree).
void encode_scan(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out);
void encode_heap(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out);

}  // namespace statefold::tokenizer::bpe
