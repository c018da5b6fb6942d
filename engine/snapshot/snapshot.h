// snapshot: consistent checkpoints of a data directory's store, taken while serving, listed, pruned and restored.
// A snapshot is DATA_DIR/snapshots/<id>/ holding `store/` (a RocksDB checkpoint: state and offsets of one instant)
// and `manifest.json` (offsets, state schema version, store hash, counts).
//
//   auto taken = snapshot::create(store, data_dir);   // while serve runs: from serve's own store handle
//   snapshot::restore(data_dir, taken->id);            // serve stopped; serve then continues from its offsets
//
// Thread-safety: create() may run beside the engine's commits; restore() needs the store closed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/base/result.h"
#include "engine/store/store.h"

namespace statefold::snapshot {

struct Manifest {
  std::string id;
  std::string created_at;          // RFC 3339, UTC
  std::uint64_t schema_version = 0;  // fold::kStateSchemaVersion of the build that took it
  std::map<std::int32_t, std::int64_t> offsets;
  std::string store_hash;
  std::uint64_t sessions = 0;
  std::uint64_t events_applied = 0;
  std::string path;                // where it is (not stored in the file)
};

std::string snapshots_dir(const std::string& data_dir);
base::Result<Manifest> create(const store::Store& store, const std::string& data_dir);
// Newest first. Directories without a readable manifest are skipped (an interrupted create).
std::vector<Manifest> list(const std::string& data_dir);
// Keeps the newest `keep` snapshots, deletes the rest; returns how many it deleted.
std::size_t prune(const std::string& data_dir, std::size_t keep);
// Replaces DATA_DIR/store with the snapshot's copy. The current store is moved aside, not deleted
// (DATA_DIR/store.before-restore-<time>). A snapshot of another state schema version is refused, naming replay.
base::Result<Manifest> restore(const std::string& data_dir, const std::string& id);

std::string manifest_json(const Manifest& manifest);

}  // namespace statefold::snapshot
