// The key-value view the fold reads from and writes to. The store implements Reader over RocksDB; tests and
// reference folds use MemoryKv. Keeping the fold on this small interface keeps it free of I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace statefold::fold {

class Reader {
 public:
  virtual ~Reader() = default;
  virtual std::optional<std::string> get(std::string_view key) const = 0;
  // Visits keys starting with `prefix` in ascending byte order, from `start` (>= prefix) on, until `visit`
  // returns false.
  virtual void scan(std::string_view prefix, std::string_view start,
                    const std::function<bool(std::string_view key, std::string_view value)>& visit) const = 0;
  void scan(std::string_view prefix,
            const std::function<bool(std::string_view key, std::string_view value)>& visit) const {
    scan(prefix, prefix, visit);
  }
};

// Pending writes of one batch; a nullopt value marks a delete. Reads see these over the base reader. A later write
// of a key replaces the earlier one, and find() sees it at once.
//
// Built for the fold's hot path (a few writes and lookups per event, thousands of keys per batch): keys and values
// are copied into a chunked arena, found through a hash table, and put in key order only once, when entries() is
// first called after a change (the store commits them in that order). Prefix scans before that walk only the keys
// with the prefix's first byte (the key's tag, fold/layout.h).
class WriteSet {
 public:
  struct Entry {
    std::string_view key;
    std::optional<std::string_view> value;  // nullopt: deleted
  };

  WriteSet();
  ~WriteSet();
  WriteSet(WriteSet&&) noexcept;
  WriteSet& operator=(WriteSet&&) noexcept;
  WriteSet(const WriteSet&) = delete;
  WriteSet& operator=(const WriteSet&) = delete;

  void put(std::string_view key, std::string_view value) { write(key, value); }
  void erase(std::string_view key) { write(key, std::nullopt); }
  // nullptr: not written in this set; otherwise the value, nullopt when deleted. Valid until the next put or erase.
  const std::optional<std::string_view>* find(std::string_view key) const;
  // Every key once, with its last write, in ascending byte order. Orders them on the first call after a change:
  // one thread at a time may call it, while others find() and scan() (which do not read the order). The engine's
  // commit thread does, so the ordering is off the fold's thread.
  std::span<const Entry> entries() const;
  // Visits the keys starting with `prefix`, from `start` (>= prefix) on, in ascending order, deletes included,
  // until `visit` returns false.
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view key, const std::optional<std::string_view>& value)>& visit) const;
  std::size_t size() const { return _entries.size(); }
  bool empty() const { return _entries.empty(); }
  void clear();

 private:
  // Append-only storage in chunks that never move, so the views into them stay valid until clear().
  struct Arena {
    std::vector<std::unique_ptr<char[]>> blocks;
    char* next = nullptr;
    std::size_t left = 0;
    std::string_view copy(std::string_view bytes);
  };

  void write(std::string_view key, std::optional<std::string_view> value);
  std::size_t slot(std::string_view key, std::size_t hash) const;  // of `key`, or the empty one it would take
  void grow_table();

  std::vector<Entry> _entries;       // in the order first written
  std::vector<std::size_t> _hashes;  // of _entries' keys
  // Open addressing, linear probing, at most half full: the high half of the key's hash, then index + 1 into
  // _entries (0: empty), so most probes settle without touching an entry.
  std::vector<std::uint64_t> _table;
  std::vector<std::uint32_t> _by_tag[256];  // _entries by their key's first byte, in the order first written
  Arena _keys;    // apart from the values, so that lookups and sorting read dense memory
  Arena _values;
  mutable std::vector<Entry> _sorted;
  mutable bool _sorted_valid = true;
};

// A reader that sees `pending` (a batch folded but not committed yet) over `base`: the engine folds the next batch
// through it while the store commits the previous one. Both must outlive it and stay unchanged while it is read.
class Overlay final : public Reader {
 public:
  Overlay(const WriteSet& pending, const Reader& base) : _pending(pending), _base(base) {}
  std::optional<std::string> get(std::string_view key) const override;
  // Merges the two in key order: for the rare whole-session passes (checkpoints, erasure), not the per-event path.
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  using Reader::scan;

 private:
  const WriteSet& _pending;
  const Reader& _base;
};

// An ordered in-memory store: the reference fold of tests, and a scratch store for tools.
class MemoryKv final : public Reader {
 public:
  std::optional<std::string> get(std::string_view key) const override;
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  using Reader::scan;
  void apply(const WriteSet& writes);
  std::size_t size() const { return _data.size(); }

 private:
  std::map<std::string, std::string, std::less<>> _data;
};

}  // namespace statefold::fold
