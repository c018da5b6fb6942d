// Time travel (spec section 4): a session as it was at a past version or time. The state is rebuilt from the
// session's nearest checkpoint at or below the version plus fewer than kCheckpointInterval refolded history
// entries, so the cost does not grow with the session's length or the topic's size. Pure: reads only a Reader.
//
//   auto past = fold::SessionAsOf::open(store_reader, "s-1", 10);
//   if (past) view::session_json(**past, "s-1");   // any view, as of version 10
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace statefold::fold {

// A Reader that shows one session as it stood at `version`: its header and memory as rebuilt, its history up to
// that version. Keys of other sessions and store-wide keys read through to the underlying reader.
class SessionAsOf final : public Reader {
 public:
  // Errors: the session does not exist; version 0 (no state yet) or beyond the session's current version.
  static base::Result<std::unique_ptr<SessionAsOf>> open(const Reader& reader, std::string_view session_id,
                                                         std::uint64_t version);

  std::uint64_t version() const { return _version; }
  std::uint64_t current_version() const { return _current_version; }
  // The session was erased since: the rebuilt state lacks the erased content, so its state hash is that of the
  // redacted state, not the one the session had then.
  bool redacted() const { return _redacted; }
  std::uint64_t refolded() const { return _refolded; }  // history entries folded on top of the checkpoint

  std::optional<std::string> get(std::string_view key) const override;
  // Supports the prefixes the views use: the session's memory or history prefix, or keys of other sessions.
  void scan(std::string_view prefix, std::string_view start,
            const std::function<bool(std::string_view, std::string_view)>& visit) const override;
  using Reader::scan;

 private:
  SessionAsOf(const Reader& reader, std::string session_id, std::uint64_t version);

  const Reader& _reader;
  std::string _session_id;
  std::uint64_t _version;
  std::uint64_t _current_version = 0;
  bool _redacted = false;
  std::uint64_t _refolded = 0;
  MemoryKv _rebuilt;  // the session's header and memory keys at _version
};

// The session's last version whose Kafka record time is at or before `time_ms`: 0 when its first event is later,
// nullopt when there is no such session. A binary search over the history (O(log versions) reads); record times
// of one session come from one partition, which Kafka keeps in order when topics use LogAppendTime and producers
// keep in order in practice with CreateTime.
std::optional<std::uint64_t> version_at_time(const Reader& reader, std::string_view session_id, std::int64_t time_ms);

}  // namespace statefold::fold
