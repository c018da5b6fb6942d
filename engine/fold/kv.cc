#include "engine/fold/kv.h"

namespace statefold::fold {

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
  if (const auto* pending = _pending.find(key)) return *pending;
  return _base.get(key);
}

void Overlay::scan(std::string_view prefix, std::string_view start,
                   const std::function<bool(std::string_view, std::string_view)>& visit) const {
  std::map<std::string, std::string, std::less<>> merged;
  _base.scan(prefix, start, [&](std::string_view key, std::string_view value) {
    merged.emplace(key, value);
    return true;
  });
  const auto& pending = _pending.entries();
  for (auto it = pending.lower_bound(start); it != pending.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    if (it->second) {
      merged.insert_or_assign(it->first, *it->second);
    } else {
      merged.erase(it->first);
    }
  }
  for (const auto& [key, value] : merged) {
    if (!visit(key, value)) break;
  }
}

void MemoryKv::apply(const WriteSet& writes) {
  for (const auto& [key, value] : writes.entries()) {
    if (value) {
      _data.insert_or_assign(key, *value);
    } else {
      _data.erase(key);
    }
  }
}

}  // namespace statefold::fold
