// verify: compares every session's state hash in a live store with a store rebuilt from the log. Hashes are
// recomputed from the headers, since a stored hash could have been altered along with its header. The rebuild
// itself is the caller's (the engine in replay mode); this compares the two stores.
//
//   auto live = audit::state_hashes(live_reader);        // before the rebuild: the live store is frozen now
//   auto rebuilt = audit::state_hashes(rebuilt_reader);
//   auto report = audit::compare(*live, *rebuilt);
//
// Thread-safety: stateless; as safe as the Reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace statefold::audit {

// Session id -> its state hash (hex), recomputed from its header. Error: a damaged header.
[[nodiscard]] base::Result<std::map<std::string, std::string>> state_hashes(const fold::Reader& reader);

// The store hash (hex) of those state hashes: the XOR of SHA-256(session id, state hash) over sessions.
std::string store_hash_of(const std::map<std::string, std::string>& state_hashes);

struct Difference {
  std::string session_id;
  std::optional<std::string> live;     // nullopt: missing from the live store
  std::optional<std::string> rebuilt;  // nullopt: missing from the rebuild
};

struct VerifyReport {
  std::size_t sessions = 0;  // in the live store
  std::string live_store_hash;
  std::string rebuilt_store_hash;
  std::vector<Difference> differing;  // the live store's sessions in id order, then those only the rebuild has
  bool ok() const { return differing.empty() && live_store_hash == rebuilt_store_hash; }
};

VerifyReport compare(const std::map<std::string, std::string>& live, const std::map<std::string, std::string>& rebuilt);

// What `statefold verify` prints (--format json / text), one trailing newline. `records`: how many the rebuild
// read; `show`: how many differing sessions the text lists.
std::string to_json(const VerifyReport& report);
std::string to_text(const VerifyReport& report, std::uint64_t records, std::size_t show);

}  // namespace statefold::audit
