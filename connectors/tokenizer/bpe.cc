#include "connectors/tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <utility>

namespace statefold::tokenizer::bpe {
namespace {

struct Part {
  std::uint32_t start;
  std::uint32_t rank;  // rank of this part joined with the next one, kNoRank if none
};

struct HeapEntry {
  std::uint32_t rank;
  std::uint32_t start;
  bool operator>(const HeapEntry& o) const { return rank != o.rank ? rank > o.rank : start > o.start; }
};

// Reused across calls on one thread so that count() does not allocate once warm.
struct Scratch {
  std::vector<Part> parts;
  std::vector<std::uint32_t> next, prev, pair_rank;
  std::vector<HeapEntry> heap;
};

Scratch& scratch() {
  thread_local Scratch s;
  return s;
}

// After the merge the parts are the pieces' tokens: their starts and, at the end, the piece's size.
void merge_scan(const RankTable& table, std::string_view piece, std::vector<Part>& parts) {
  const auto n = static_cast<std::uint32_t>(piece.size());
  parts.clear();
  for (std::uint32_t i = 0; i + 1 < n; ++i) parts.push_back({i, table.find(piece.substr(i, 2))});
  parts.push_back({n - 1, kNoRank});
  parts.push_back({n, kNoRank});

  // The rank of part i joined with part i + 1, as if part i + 1 were already gone.
  auto rank_after = [&](std::size_t i) {
    if (i + 3 >= parts.size()) return kNoRank;
    return table.find(piece.substr(parts[i].start, parts[i + 3].start - parts[i].start));
  };
  while (parts.size() > 2) {
    std::uint32_t min_rank = kNoRank;
    std::size_t min_at = 0;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      if (parts[i].rank < min_rank) {
        min_rank = parts[i].rank;
        min_at = i;
      }
    }
    if (min_rank == kNoRank) break;
    parts[min_at].rank = rank_after(min_at);
    if (min_at > 0) parts[min_at - 1].rank = rank_after(min_at - 1);
    parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(min_at) + 1);
  }
}

template <typename Emit>
void merge_heap(const RankTable& table, std::string_view piece, Emit&& emit) {
  Scratch& s = scratch();
  const auto n = static_cast<std::uint32_t>(piece.size());
  // Parts are named by their start byte; next[start] == n ends the piece, prev of the first part is unused.
  s.next.resize(n);
  s.prev.resize(n);
  s.pair_rank.resize(n);
  s.heap.clear();
  auto pair_rank_of = [&](std::uint32_t start) {
    const std::uint32_t second = s.next[start];
    if (second >= n) return kNoRank;
    return table.find(piece.substr(start, s.next[second] - start));
  };
  for (std::uint32_t i = 0; i < n; ++i) {
    s.next[i] = i + 1;
    s.prev[i] = i == 0 ? n : i - 1;
  }
  for (std::uint32_t i = 0; i < n; ++i) {
    s.pair_rank[i] = i + 1 < n ? table.find(piece.substr(i, 2)) : kNoRank;
    if (s.pair_rank[i] != kNoRank) s.heap.push_back({s.pair_rank[i], i});
  }
  std::make_heap(s.heap.begin(), s.heap.end(), std::greater<>());
  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), std::greater<>());
    const HeapEntry top = s.heap.back();
    s.heap.pop_back();
    // Stale entries: the part was merged into its left neighbour (pair_rank reset to kNoRank below), or its
    // pair changed since the entry was pushed.
    if (s.pair_rank[top.start] != top.rank) continue;
    const std::uint32_t start = top.start, gone = s.next[start];
    s.pair_rank[gone] = kNoRank;
    s.next[start] = s.next[gone];
    if (s.next[start] < n) s.prev[s.next[start]] = start;
    s.pair_rank[start] = pair_rank_of(start);
    if (s.pair_rank[start] != kNoRank) {
      s.heap.push_back({s.pair_rank[start], start});
      std::push_heap(s.heap.begin(), s.heap.end(), std::greater<>());
    }
    if (start > 0) {
      const std::uint32_t before = s.prev[start];
      s.pair_rank[before] = pair_rank_of(before);
      if (s.pair_rank[before] != kNoRank) {
        s.heap.push_back({s.pair_rank[before], before});
        std::push_heap(s.heap.begin(), s.heap.end(), std::greater<>());
      }
    }
  }
  for (std::uint32_t start = 0; start < n; start = s.next[start]) emit(start, s.next[start]);
}

}  // namespace

void encode_scan(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out) {
  if (piece.size() == 1) {
    out.push_back(table.find(piece));
    return;
  }
  auto& parts = scratch().parts;
  merge_scan(table, piece, parts);
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    out.push_back(table.find(piece.substr(parts[i].start, parts[i + 1].start - parts[i].start)));
  }
}

void encode_heap(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out) {
  merge_heap(table, piece, [&](std::uint32_t begin, std::uint32_t end) {
    out.push_back(table.find(piece.substr(begin, end - begin)));
  });
}

void encode(const RankTable& table, std::string_view piece, std::vector<std::uint32_t>& out) {
  if (piece.size() >= kHeapThreshold) {
    encode_heap(table, piece, out);
  } else {
    encode_scan(table, piece, out);
  }
}

std::size_t count(const RankTable& table, std::string_view piece) {
  if (piece.size() <= 1) return piece.size();
  if (piece.size() >= kHeapThreshold) {
    std::size_t n = 0;
    merge_heap(table, piece, [&](std::uint32_t, std::uint32_t) { ++n; });
    return n;
  }
  auto& parts = scratch().parts;
  merge_scan(table, piece, parts);
  return parts.size() - 1;
}

}  // namespace statefold::tokenizer::bpe
