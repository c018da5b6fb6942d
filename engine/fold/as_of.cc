#include "engine/fold/as_of.h"

#include <stdexcept>

#include "engine/fold/fold.h"
#include "engine/fold/internal/stored.h"
#include "engine/fold/layout.h"
#include "statefold/schema/state_generated.h"

namespace statefold::fold {

namespace {

std::string_view as_view(const flatbuffers::Vector<std::uint8_t>* bytes) {
  return bytes == nullptr ? std::string_view()
                          : std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size());
}

}  // namespace

base::Result<std::unique_ptr<SessionAsOf>> SessionAsOf::open(const Reader& reader, std::string_view session_id,
                                                             std::uint64_t version) {
  auto current = load_header(reader, session_id);
  if (!current) return base::make_error("no session " + std::string(session_id));
  if (version == 0 || version > current->version) {
    return base::make_error("version " + std::to_string(version) + " is out of range: session " +
                            std::string(session_id) + " has versions 1.." + std::to_string(current->version));
  }
  std::unique_ptr<SessionAsOf> past(new SessionAsOf(reader, std::string(session_id), version));
  past->_current_version = current->version;
  past->_redacted = current->erased;

  // The nearest checkpoint at or below the version seeds the rebuild; below the first one, the empty state does.
  const std::uint64_t base_version = version / kCheckpointInterval * kCheckpointInterval;
  WriteSet seed;
  if (base_version > 0) {
    auto bytes = reader.get(key::checkpoint(session_id, base_version));
    if (!bytes) {
      return base::make_error("session " + std::string(session_id) + " has no checkpoint at version " +
                              std::to_string(base_version) + "; the store is damaged (run statefold verify)");
    }
    const auto* checkpoint = detail::verified_root<state::SessionCheckpoint>(*bytes, "session checkpoint");
    seed.put(key::header(session_id), std::string(as_view(checkpoint->header())));
    if (const auto* memory = checkpoint->memory()) {
      for (const auto* m : *memory) {
        state::MemoryEntryT entry;
        entry.value = m->value() == nullptr ? "" : m->value()->str();
        entry.pinned = m->pinned();
        entry.version = m->version();
        flatbuffers::FlatBufferBuilder builder(64);
        builder.Finish(state::MemoryEntry::Pack(builder, &entry));
        seed.put(key::memory(session_id, m->label() == nullptr ? "" : m->label()->string_view()),
                 std::string(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize()));
      }
    }
  }
  past->_rebuilt.apply(seed);

  // Refold the few events after the checkpoint, each with the refusal counters it was accepted under.
  Folder folder(past->_rebuilt);
  bool any = false;
  std::optional<std::uint64_t> damaged;  // a history entry that does not verify: an error, as in fold/read.h
  const std::string history = key::history_prefix(session_id);
  reader.scan(history, key::history(session_id, base_version + 1),
              [&](std::string_view k, std::string_view value) {
                const std::uint64_t at = key::read_be64(k.substr(history.size()));
                if (at > version) return false;
                const auto* entry = detail::verify_root<state::HistoryEntry>(value);
                if (entry == nullptr || entry->event() == nullptr) {
                  damaged = at;
                  return false;
                }
                const auto* bytes = entry->event();
                std::vector<std::uint8_t> canonical(bytes->begin(), bytes->end());
                auto event = codec::decode(canonical, codec::Encoding::flatbuffers);
                if (!event) {
                  throw std::runtime_error("session " + std::string(session_id) + " version " +
                                           std::to_string(entry->version()) +
                                           ": stored event does not decode: " + event.error().message);
                }
                folder.refold(*event, {entry->partition(), entry->offset(), entry->log_time_ms()},
                              entry->duplicates(), entry->rejections());
                ++past->_refolded;
                any = true;
                return true;
              });
  if (damaged) {
    return base::make_error("corrupt stored history entry of session " + std::string(session_id) + " at version " +
                            std::to_string(*damaged) + ": it does not verify as FlatBuffers");
  }
  if (any) {
    // Only the session's own keys matter; the store summary the folder also wrote is not shown.
    WriteSet own;
    for (const auto& [k, v] : folder.finish().entries()) {
      if (k == key::header(session_id) || k.starts_with(key::memory_prefix(session_id))) {
        if (v) {
          own.put(k, *v);
        } else {
          own.erase(k);
        }
      }
    }
    past->_rebuilt.apply(own);
  }
  auto rebuilt = load_header(past->_rebuilt, session_id);
  if (!rebuilt || rebuilt->version != version) {
    return base::make_error("session " + std::string(session_id) + " could not be rebuilt at version " +
                            std::to_string(version) + "; the store is damaged (run statefold verify)");
  }
  return past;
}

SessionAsOf::SessionAsOf(const Reader& reader, std::string session_id, std::uint64_t version)
    : _reader(reader), _session_id(std::move(session_id)), _version(version) {}

std::optional<std::string> SessionAsOf::get(std::string_view k) const {
  if (k == key::header(_session_id) || k.starts_with(key::memory_prefix(_session_id))) return _rebuilt.get(k);
  const std::string history = key::history_prefix(_session_id);
  if (k.starts_with(history) && key::read_be64(k.substr(history.size())) > _version) return std::nullopt;
  return _reader.get(k);
}

void SessionAsOf::scan(std::string_view prefix, std::string_view start,
                       const std::function<bool(std::string_view, std::string_view)>& visit) const {
  const std::string memory = key::memory_prefix(_session_id);
  const std::string history = key::history_prefix(_session_id);
  if (prefix.starts_with(memory)) {
    _rebuilt.scan(prefix, start, visit);
  } else if (prefix.starts_with(history)) {
    _reader.scan(prefix, start, [&](std::string_view k, std::string_view v) {
      if (key::read_be64(k.substr(history.size())) > _version) return false;
      return visit(k, v);
    });
  } else if (memory.starts_with(prefix) || history.starts_with(prefix) ||
             key::header(_session_id).starts_with(prefix)) {
    throw std::logic_error("SessionAsOf: a scan of \"" + std::string(prefix) +
                           "\" would mix the rebuilt session with the present");
  } else {
    _reader.scan(prefix, start, visit);
  }
}

std::optional<std::uint64_t> version_at_time(const Reader& reader, std::string_view session_id,
                                             std::int64_t time_ms) {
  auto header = load_header(reader, session_id);
  if (!header) return std::nullopt;
  auto log_time = [&](std::uint64_t version) {
    auto bytes = reader.get(key::history(session_id, version));
    if (!bytes) throw std::runtime_error("session " + std::string(session_id) + " lacks history version " +
                                         std::to_string(version));
    return detail::verified_root<state::HistoryEntry>(*bytes, "history entry")->log_time_ms();
  };
  // Largest version v in [0, version] with log_time(v) <= time_ms (version 0 stands for "before the first").
  std::uint64_t lo = 0;
  std::uint64_t hi = header->version;
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo + 1) / 2;
    if (log_time(mid) <= time_ms) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return lo;
}

}  // namespace statefold::fold
