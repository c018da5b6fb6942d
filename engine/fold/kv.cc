#include "engine/fold/kv.h"

#include <algorithm>
#include <cstring>

namespace statefold::fold {

namespace {
constexpr std::size_t kBlockBytes = 256 * 1024;  // arena chunk; a larger value gets a chunk of its own
constexpr std::size_t kMinTable = 1024;

std::uint8_t tag_of(std::string_view key) { return key.empty() ? 0 : static_cast<std::uint8_t>(key[0]); }
}  // namespace

WriteSet::WriteSet() = default;
WriteSet::~WriteSet() = default;
WriteSet::WriteSet(WriteSet&&) noexcept = default;
WriteSet& WriteSet::operator=(WriteSet&&) noexcept = default;

std::string_view WriteSet::Arena::copy(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (bytes.size() > left) {
    const std::size_t size = std::max(kBlockBytes, bytes.size());
    blocks.push_back(std::make_unique_for_overwrite<char[]>(size));
    next = blocks.back().get();
    left = size;
  }
  char* at = next;
  std::memcpy(at, bytes.data(), bytes.size());
  next += bytes.size();
  left -= bytes.size();
  return {at, bytes.size()};
}

std::size_t WriteSet::slot(std::string_view key, std::size_t hash) const {
  const std::size_t mask = _table.size() - 1;
  const std::uint64_t tag = static_cast<std::uint64_t>(hash >> 32) << 32;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const std::uint64_t at = _table[i];
    if (at == 0) return i;
    if ((at & ~std::uint64_t{0xffffffff}) == tag && _entries[(at & 0xffffffff) - 1].key == key) return i;
  }
}

void WriteSet::grow_table() {
  _table.assign(std::max(kMinTable, _table.size() * 2), 0);
  const std::size_t mask = _table.size() - 1;
  for (std::size_t e = 0; e < _entries.size(); ++e) {
    std::size_t i = _hashes[e] & mask;
    while (_table[i] != 0) i = (i + 1) & mask;
    _table[i] = (static_cast<std::uint64_t>(_hashes[e] >> 32) << 32) | (e + 1);
  }
}

void WriteSet::write(std::string_view key, std::optional<std::string_view> value) {
  _sorted_valid = false;
  if ((_entries.size() + 1) * 2 > _table.size()) grow_table();
  const std::size_t hash = std::hash<std::string_view>{}(key);
  std::uint64_t& at = _table[slot(key, hash)];
  const std::optional<std::string_view> stored =
      value ? std::optional<std::string_view>(_values.copy(*value)) : std::nullopt;
  if (at != 0) {
    _entries[(at & 0xffffffff) - 1].value = stored;  // the earlier value's bytes stay in the arena until clear()
    return;
  }
  _entries.push_back({_keys.copy(key), stored});
  _hashes.push_back(hash);
  at = (static_cast<std::uint64_t>(hash >> 32) << 32) | _entries.size();
  _by_tag[tag_of(key)].push_back(static_cast<std::uint32_t>(_entries.size() - 1));
}

const std::optional<std::string_view>* WriteSet::find(std::string_view key) const {
  if (_entries.empty()) return nullptr;
  const std::uint64_t at = _table[slot(key, std::hash<std::string_view>{}(key))];
  return at == 0 ? nullptr : &_entries[(at & 0xffffffff) - 1].value;
}

std::span<const WriteSet::Entry> WriteSet::entries() const {
  if (!_sorted_valid) {
    _sorted.clear();
    _sorted.reserve(_entries.size());
    for (const auto& tagged : _by_tag) {
      if (tagged.empty()) continue;
      const std::size_t from = _sorted.size();
      for (std::uint32_t e : tagged) _sorted.push_back(_entries[e]);
      std::sort(_sorted.begin() + static_cast<std::ptrdiff_t>(from), _sorted.end(),
                [](const Entry& a, const Entry& b) { return a.key < b.key; });
    }
    _sorted_valid = true;
  }
  return _sorted;
}

void WriteSet::scan(std::string_view prefix, std::string_view start,
                    const std::function<bool(std::string_view, const std::optional<std::string_view>&)>& visit) const {
  if (start < prefix) start = prefix;
  std::vector<const Entry*> found;
  auto consider = [&](const Entry& e) {
    if (e.key.starts_with(prefix) && e.key >= start) found.push_back(&e);
  };
  if (prefix.empty()) {
    for (const Entry& e : _entries) consider(e);
  } else {
    for (std::uint32_t e : _by_tag[tag_of(prefix)]) consider(_entries[e]);
  }
  std::sort(found.begin(), found.end(), [](const Entry* a, const Entry* b) { return a->key < b->key; });
  for (const Entry* e : found) {
    if (!visit(e->key, e->value)) break;
  }
}

void WriteSet::clear() {
  _entries.clear();
  _hashes.clear();
  _table.clear();
  for (auto& tagged : _by_tag) tagged.clear();
  _keys = {};
  _values = {};
  _sorted.clear();
  _sorted_valid = true;
}

std::optional<std::string> MemoryKv::get(std::string_view key) const {
  auto it = _data.find(key);
  if (it == _data.end()) return std::nullopt;
  return it->second;
}

void MemoryKv::scan(std::string_view prefix, std::string_view start,
                    const std::function<bool(std::string_view, std::string_view)>& visit) const {
  for (auto it = _data.lower_bound(start); it != _data.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (!visit(it->first, it->second)) break;
  }
}

std::optional<std::string> Overlay::get(std::string_view key) const {
  if (const auto* pending = _pending.find(key)) {
    if (!*pending) return std::nullopt;
    return std::string(**pending);
  }
  return _base.get(key);
}

void Overlay::scan(std::string_view prefix, std::string_view start,
                   const std::function<bool(std::string_view, std::string_view)>& visit) const {
  std::map<std::string, std::string, std::less<>> merged;
  _base.scan(prefix, start, [&](std::string_view key, std::string_view value) {
    merged.emplace(key, value);
    return true;
  });
  _pending.scan(prefix, start, [&](std::string_view key, const std::optional<std::string_view>& value) {
    if (value) {
      merged.insert_or_assign(std::string(key), std::string(*value));
    } else if (auto it = merged.find(key); it != merged.end()) {
      merged.erase(it);
    }
    return true;
  });
  for (const auto& [key, value] : merged) {
    if (!visit(key, value)) break;
  }
}

void MemoryKv::apply(const WriteSet& writes) {
  for (const auto& [key, value] : writes.entries()) {
    if (value) {
      _data.insert_or_assign(std::string(key), std::string(*value));
    } else if (auto it = _data.find(key); it != _data.end()) {
      _data.erase(it);
    }
  }
}

}  // namespace statefold::fold
