// The key-value view the fold reads from and writes to. The store implements Reader over RocksDB; tests and
// reference folds use MemoryKv. Keeping the fold on this small interface keeps it free of I/O.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>

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

// Pending writes of one batch, in key order; nullopt marks a delete. Reads see these over the base reader.
class WriteSet {
 public:
  void put(std::string key, std::string value) { _writes[std::move(key)] = std::move(value); }
  void erase(std::string key) { _writes[std::move(key)] = std::nullopt; }
  // nullopt: not written in this set; optional(nullopt): deleted.
  const std::optional<std::string>* find(std::string_view key) const {
    auto it = _writes.find(key);
    return it == _writes.end() ? nullptr : &it->second;
  }
  const std::map<std::string, std::optional<std::string>, std::less<>>& entries() const { return _writes; }
  bool empty() const { return _writes.empty(); }
  void clear() { _writes.clear(); }

 private:
  std::map<std::string, std::optional<std::string>, std::less<>> _writes;
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
