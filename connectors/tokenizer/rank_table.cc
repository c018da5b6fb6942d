#include "connectors/tokenizer/rank_table.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <fstream>
#include <iterator>

namespace statefold::tokenizer {
namespace {

constexpr std::string_view kMagic = "SFRANKS1";

std::uint64_t load64(const char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

std::uint64_t mix(std::uint64_t v) {  // splitmix64's finaliser
  v ^= v >> 30;
  v *= 0xbf58476d1ce4e5b9ull;
  v ^= v >> 27;
  v *= 0x94d049bb133111ebull;
  v ^= v >> 31;
  return v;
}

class Reader {
 public:
  explicit Reader(std::string_view image) : _rest(image) {}
  bool take(std::size_t n, std::string_view& out) {
    if (_rest.size() < n) return false;
    out = _rest.substr(0, n);
    _rest.remove_prefix(n);
    return true;
  }
  bool u32(std::uint32_t& v) {
    std::string_view b;
    if (!take(4, b)) return false;
    v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[static_cast<std::size_t>(i)]);
    return true;
  }
  bool u16(std::uint32_t& v) {
    std::string_view b;
    if (!take(2, b)) return false;
    v = static_cast<std::uint32_t>(static_cast<unsigned char>(b[0]) | (static_cast<unsigned char>(b[1]) << 8));
    return true;
  }
  bool done() const { return _rest.empty(); }

 private:
  std::string_view _rest;
};

}  // namespace

std::uint64_t hash_bytes(std::string_view bytes) {
  const char* p = bytes.data();
  std::size_t n = bytes.size();
  std::uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
  while (n >= 8) {
    h = mix(h ^ load64(p));
    p += 8;
    n -= 8;
  }
  if (n > 0) {
    std::uint64_t tail = 0;
    std::memcpy(&tail, p, n);
    h = mix(h ^ tail ^ (std::uint64_t{n} << 59));
  }
  return h;
}

base::Result<RankTable> RankTable::load(const std::filesystem::path& file, std::string_view expected_name,
                                        std::size_t expected_tokens) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return base::make_error("cannot open the rank table " + file.string() +
                            " (built by the tokenizer target; set STATEFOLD_TOKENIZER_RANKS to its directory)");
  }
  std::string image((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return base::make_error("cannot read the rank table " + file.string());
  auto table = parse(image, expected_name, expected_tokens);
  if (!table.ok()) return base::make_error(file.string() + ": " + table.error().message);
  return table;
}

base::Result<RankTable> RankTable::parse(std::string_view image, std::string_view expected_name,
                                         std::size_t expected_tokens) {
  Reader r(image);
  std::string_view magic, name;
  std::uint32_t name_size = 0, count = 0;
  if (!r.take(kMagic.size(), magic) || magic != kMagic) return base::make_error("not a statefold rank table");
  if (!r.u32(name_size) || name_size > 64 || !r.take(name_size, name) || !r.u32(count)) {
    return base::make_error("truncated header");
  }
  if (name != expected_name) {
    return base::make_error("holds " + std::string(name) + ", not " + std::string(expected_name));
  }
  if (count != expected_tokens) {
    return base::make_error("holds " + std::to_string(count) + " tokens, expected " +
                            std::to_string(expected_tokens));
  }

  RankTable table;
  table._offsets.reserve(std::size_t{count} + 1);
  table._arena.reserve(image.size());
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint32_t rank = 0, size = 0;
    std::string_view bytes;
    if (!r.u32(rank) || !r.u16(size) || !r.take(size, bytes)) return base::make_error("truncated at token " +
                                                                                     std::to_string(i));
    if (rank != i) return base::make_error("rank " + std::to_string(rank) + " where " + std::to_string(i) +
                                           " was expected: ranks must be 0..n-1 in order");
    if (size == 0) return base::make_error("empty token at rank " + std::to_string(i));
    table._offsets.push_back(static_cast<std::uint32_t>(table._arena.size()));
    table._arena.append(bytes);
  }
  if (!r.done()) return base::make_error("trailing bytes after the last token");
  table._offsets.push_back(static_cast<std::uint32_t>(table._arena.size()));

  for (auto& rank : table._byte_rank) rank = kNoRank;
  table._pair_rank.assign(std::size_t{1} << 16, kNoRank);
  const std::size_t capacity = std::bit_ceil(std::size_t{count} * 2 + 2);
  table._slots.assign(capacity, Slot{});
  table._mask = capacity - 1;
  for (std::uint32_t rank = 0; rank < count; ++rank) {
    const std::string_view bytes = table.bytes(rank);
    if (bytes.size() > 255) return base::make_error("token of " + std::to_string(bytes.size()) + " bytes at rank " +
                                                    std::to_string(rank));
    std::uint32_t* direct = nullptr;
    if (bytes.size() == 1) direct = &table._byte_rank[static_cast<unsigned char>(bytes[0])];
    if (bytes.size() == 2) {
      direct = &table._pair_rank[static_cast<unsigned char>(bytes[0]) << 8 | static_cast<unsigned char>(bytes[1])];
    }
    const std::uint32_t existing = direct != nullptr ? *direct : table.find_hashed(bytes);
    if (existing != kNoRank) {
      return base::make_error("the bytes of rank " + std::to_string(rank) + " are those of rank " +
                              std::to_string(existing));
    }
    table._longest = std::max(table._longest, bytes.size());
    if (direct != nullptr) {
      *direct = rank;
      continue;
    }
    const std::uint64_t h = hash_bytes(bytes);
    std::uint64_t i = h & table._mask;
    while (table._slots[i].rank != 0) i = (i + 1) & table._mask;
    table._slots[i] = Slot{head_of(bytes), rank + 1,
                           static_cast<std::uint32_t>(h >> 40) << 8 | static_cast<std::uint32_t>(bytes.size())};
  }
  for (int b = 0; b < 256; ++b) {
    if (table._byte_rank[b] == kNoRank) return base::make_error("byte " + std::to_string(b) + " has no token");
  }
  return table;
}

std::uint64_t RankTable::head_of(std::string_view bytes) {
  std::uint64_t head = 0;
  std::memcpy(&head, bytes.data(), std::min<std::size_t>(bytes.size(), sizeof head));
  return head;
}

std::uint32_t RankTable::find_hashed(std::string_view bytes) const {
  const std::uint64_t h = hash_bytes(bytes);
  const std::uint32_t tag_size = static_cast<std::uint32_t>(h >> 40) << 8 | static_cast<std::uint32_t>(bytes.size());
  const std::uint64_t head = head_of(bytes);
  for (std::uint64_t i = h & _mask;; i = (i + 1) & _mask) {
    const Slot& slot = _slots[i];
    if (slot.rank == 0) return kNoRank;
    if (slot.tag_size != tag_size || slot.head != head) continue;
    const std::uint32_t rank = slot.rank - 1;
    if (bytes.size() <= sizeof head ||
        std::memcmp(_arena.data() + _offsets[rank] + sizeof head, bytes.data() + sizeof head,
                    bytes.size() - sizeof head) == 0) {
      return rank;
    }
  }
}

}  // namespace statefold::tokenizer
