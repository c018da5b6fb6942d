// Partition snapshots on a compacted topic: how a partition's state reaches an instance that never had it (a join,
// or the failover of an owner) without folding the partition's whole log again. docs/scaling.md.
//
//   snapshot::PartitionSnapshots snapshots(options);                  // serve: one per process
//   snapshots.publish(store, 3);                                       // the owner, now and then
//   auto restored = snapshots.restore(store, 3);                       // a new owner with no state for 3
//
// The snapshot topic ("<event topic>.snapshots", cleanup.policy=compact) has as many partitions as the event topic;
// partition p's snapshots are on its partition p, keyed so that compaction keeps the newest of each:
//   "<events topic>/<p>/chunk/<i>"  16-byte snapshot id, then the i-th piece of the payload
//   "<events topic>/<p>/manifest"   JSON (PartitionManifest), sent once every chunk is delivered
// The payload is the partition's keys and values (be32 key size, be32 value size, key, value, ...) as one pinned
// view of the store held them: state and next offset of one instant. A restore checks the manifest (topic,
// partition count, state schema version), every chunk's id, the payload's SHA-256, and the state itself (each
// session header's state hash, the partition's store hash); anything amiss, and the partition is folded from the
// log instead. Never wrong state.
//
// Thread-safety: publish() from one thread at a time; restore() from any.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/base/result.h"
#include "engine/log/log.h"
#include "engine/store/store.h"

namespace statefold::snapshot {

// The snapshot topic of an event topic, unless one is named: "<events topic>.snapshots".
std::string default_snapshot_topic(const std::string& events_topic);

struct PartitionManifest {
  std::string id;  // hex of the 16-byte id every chunk carries
  std::string events_topic;
  std::int32_t partition = -1;
  int partition_count = 0;
  std::uint64_t schema_version = 0;
  std::int64_t next_offset = 0;  // the state of every event of the partition below this offset
  std::uint64_t chunks = 0;
  std::uint64_t bytes = 0;  // of the payload
  std::string sha256;       // of the payload, hex
  std::string store_hash;   // the partition's, hex
  std::uint64_t sessions = 0;
  std::string created_at;   // RFC 3339, UTC
  std::string instance;     // who published it
};

std::string partition_manifest_json(const PartitionManifest& manifest);
base::Result<PartitionManifest> parse_partition_manifest(std::string_view json);

struct PartitionSnapshotOptions {
  std::string brokers;
  std::string topic;  // empty: default_snapshot_topic(events_topic)
  std::string events_topic;
  std::string instance;
  std::size_t chunk_bytes = 512 * 1024;  // under the broker's default message.max.bytes (1 MB) before compression
  log::Properties kafka_properties;
};

struct Restored {
  PartitionManifest manifest;
  std::uint64_t bytes_read = 0;  // from the snapshot topic, values and keys
  double read_ms = 0;            // reading the snapshot topic's partition
  double verify_ms = 0;          // checking the payload and the state it holds
  double load_ms = 0;            // writing it into the store
};

class PartitionSnapshots {
 public:
  explicit PartitionSnapshots(PartitionSnapshotOptions options);
  ~PartitionSnapshots();

  // Creates the snapshot topic (compacted, one partition per event partition) if it does not exist; refuses one
  // with fewer partitions than the event topic.
  base::Result<void> ensure_topic(int partitions) const;
  // Publishes the partition's state as it is now. Error if the partition has no state here.
  base::Result<PartitionManifest> publish(const store::Store& store, std::int32_t partition);
  // Loads the newest usable snapshot of the partition into the store, which must have no state for it. Error
  // (not_found when there is none; otherwise naming what is wrong with it) when no snapshot can be used: then the
  // store is unchanged and the partition is folded from the log.
  base::Result<Restored> restore(store::Store& store, std::int32_t partition) const;

  const PartitionSnapshotOptions& options() const { return _options; }

 private:
  PartitionSnapshotOptions _options;
  std::unique_ptr<log::Producer> _producer;
};

// Checks a payload against its manifest and the state it holds (pure: no I/O). Exposed for tests.
base::Result<void> verify_payload(const PartitionManifest& manifest, std::string_view payload);

}  // namespace statefold::snapshot
