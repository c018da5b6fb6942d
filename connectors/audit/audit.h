// audit: checks one session's stored history against the log it was folded from. Every accepted event is read back
// by its offset and checked against the stored event and chain hash; every inference receipt's request is rendered
// again (materialise) from the state version it names and checked against its request hash; refusals are listed.
// Reading the log is a port, so the checks run over a MemoryKv and made-up records in tests.
//
//   auto report = audit::audit_session(store_reader, "chat-42", [&](std::int32_t p, const auto& offsets) {
//     return log::read_records(brokers, topic, p, offsets);
//   });
//   if (report && *report) std::cout << audit::to_text(**report);
//
// Thread-safety: stateless; as safe as the Reader and the RecordSource.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/kv.h"
#include "engine/log/log.h"

namespace statefold::audit {

// The records at `offsets` (ascending) of one partition; an offset with no record is absent from the result.
using RecordSource = std::function<base::Result<std::map<std::int64_t, log::StoredRecord>>(
    std::int32_t partition, const std::vector<std::int64_t>& offsets)>;

struct EventCheck {
  std::uint64_t version = 0;
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::string payload_type;
  std::string problem;  // empty: the record matches
};

struct RefusalLine {
  std::string kind;  // "duplicate" | "rejected"
  std::string event_id;  // hex
  std::int32_t partition = 0;
  std::int64_t offset = 0;
  std::uint64_t session_version = 0;
  std::string reason;
};

struct ReceiptCheck {
  std::uint64_t version = 0;
  std::uint64_t state_version = 0;
  std::string request_hash;
  std::string verdict;  // "ok", "mismatch: ..." or "not re-renderable: ..."
};

struct SessionReport {
  std::string session_id;
  std::uint64_t version = 0;
  std::string chain_hash;  // hex
  std::vector<EventCheck> events;
  std::vector<RefusalLine> refusals;
  std::vector<ReceiptCheck> receipts;
  std::uint64_t receipts_verified = 0;
  std::uint64_t receipts_unverifiable = 0;
  std::optional<std::uint64_t> first_bad_version;
  std::string problem;  // of the first bad version
  bool ok() const { return !first_bad_version.has_value(); }
};

// nullopt: no such session. Errors: the store holds a damaged value, or the log could not be read.
[[nodiscard]] base::Result<std::optional<SessionReport>> audit_session(const fold::Reader& reader,
                                                                      std::string_view session_id,
                                                                      const RecordSource& records);

// What `statefold audit` prints (--format json / text), one trailing newline.
std::string to_json(const SessionReport& report);
std::string to_text(const SessionReport& report);

}  // namespace statefold::audit
