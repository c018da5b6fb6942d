// Partition snapshots are checked before they are used (snapshot/partition_snapshot.h): a payload that matches its
// manifest and holds consistent state passes; a wrong size or digest, a header that does not hash to its state
// hash, a session of another partition or a store hash that is not the manifest's is refused, naming it.
#include "engine/snapshot/partition_snapshot.h"

#include <gtest/gtest.h>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"
#include "engine/log/log.h"

namespace statefold::snapshot {
namespace {

constexpr int kPartitions = 4;
constexpr std::int32_t kPartition = 1;

codec::Event event_from_json(const std::string& json) {
  auto bytes = codec::json_to_flatbuffers(json);
  EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message);
  auto event = codec::decode(*bytes, codec::Encoding::flatbuffers);
  EXPECT_TRUE(event.ok());
  return std::move(event).value();
}

std::string event_json(int n, const std::string& session, bool open) {
  char id[33];
  std::snprintf(id, sizeof id, "%032x", n);
  return std::string(R"({"event_id":")") + id + R"(","session_id":")" + session +
         R"(","occurred_at_us":1767225600000000,"payload_type":")" +
         (open ? R"(SessionOpened","payload":{"model":"m"}})"
               : R"(Message","payload":{"role":"user","content":[{"text":"hi"}]}})");
}

// Sessions whose home partition is kPartition, folded as the engine folds that partition, and the partition's
// state encoded as publish() encodes it.
struct Partition {
  fold::MemoryKv kv;
  std::vector<std::string> sessions;

  Partition() {
    for (int i = 0; sessions.size() < 3; ++i) {
      std::string s = "snap-";
      s += std::to_string(i);  // not "snap-" + to_string: GCC 12 -O3 warns falsely (-Wrestrict)
      if (log::partition_for_key(s, kPartitions) == kPartition) sessions.push_back(s);
    }
    fold::Folder folder(kv);
    int n = 0;
    for (const auto& s : sessions) {
      for (int e = 0; e < 3; ++e) folder.apply(event_from_json(event_json(++n, s, e == 0)), {kPartition, n, 0});
    }
    kv.apply(folder.finish());
    fold::WriteSet offset;
    std::string next;
    fold::key::append_be64(next, 9);
    offset.put(fold::key::offset(kPartition), next);
    kv.apply(offset);
  }

  std::string payload(const std::function<void(std::string& key, std::string& value)>& change = {}) const {
    std::string out;
    kv.scan("", [&](std::string_view k, std::string_view v) {
      std::string key(k);
      std::string value(v);
      if (change) change(key, value);
      for (std::size_t size : {key.size(), value.size()}) {
        for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((size >> shift) & 0xff));
      }
      out += key;
      out += value;
      return true;
    });
    return out;
  }

  PartitionManifest manifest(const std::string& payload) const {
    PartitionManifest m;
    m.id = "00112233445566778899aabbccddeeff";
    m.events_topic = "events";
    m.partition = kPartition;
    m.partition_count = kPartitions;
    m.schema_version = fold::kStateSchemaVersion;
    m.next_offset = 9;
    m.chunks = 1;
    m.bytes = payload.size();
    m.sha256 = base::to_hex(base::sha256(payload));
    m.store_hash = base::to_hex(std::span<const std::uint8_t>(fold::load_summary(kv).store_hash));
    m.sessions = sessions.size();
    return m;
  }
};

TEST(PartitionSnapshot, AConsistentPayloadPasses) {
  Partition p;
  const std::string payload = p.payload();
  EXPECT_TRUE(verify_payload(p.manifest(payload), payload).ok());
}

TEST(PartitionSnapshot, ManifestRoundTripsThroughJson) {
  Partition p;
  const PartitionManifest m = p.manifest(p.payload());
  auto back = parse_partition_manifest(partition_manifest_json(m));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(partition_manifest_json(*back), partition_manifest_json(m));
  EXPECT_FALSE(parse_partition_manifest("{\"id\":\"x\"}").ok());
}

TEST(PartitionSnapshot, APayloadThatIsNotTheManifestsIsRefused) {
  Partition p;
  const std::string payload = p.payload();
  PartitionManifest m = p.manifest(payload);
  m.bytes += 1;
  auto r = verify_payload(m, payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("bytes"), std::string::npos) << r.error().message;
  m = p.manifest(payload);
  m.sha256 = std::string(64, '0');
  r = verify_payload(m, payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("SHA-256"), std::string::npos) << r.error().message;
}

TEST(PartitionSnapshot, AHeaderChangedWithoutItsHashIsRefused) {
  Partition p;
  const std::string victim = fold::key::header(p.sessions[1]);
  const std::string payload = p.payload([&](std::string& key, std::string& value) {
    if (key != victim) return;
    state::SessionHeaderT header = fold::decode_header(value);
    header.messages += 1;
    flatbuffers::FlatBufferBuilder builder;
    builder.Finish(state::SessionHeader::Pack(builder, &header));
    value.assign(reinterpret_cast<const char*>(builder.GetBufferPointer()), builder.GetSize());
  });
  auto r = verify_payload(p.manifest(payload), payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(p.sessions[1] + "'s header does not hash"), std::string::npos) << r.error().message;
}

TEST(PartitionSnapshot, AStoreHashOtherThanTheManifestsIsRefused) {
  Partition p;
  const std::string payload = p.payload();
  PartitionManifest m = p.manifest(payload);
  m.store_hash = std::string(64, 'a');
  auto r = verify_payload(m, payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("store hash"), std::string::npos) << r.error().message;
}

TEST(PartitionSnapshot, ASnapshotOfAnotherPartitionIsRefused) {
  Partition p;
  const std::string payload = p.payload();
  PartitionManifest m = p.manifest(payload);
  m.partition = kPartition + 1;  // its sessions and offset are partition 1's
  auto r = verify_payload(m, payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("partition"), std::string::npos) << r.error().message;
}

TEST(PartitionSnapshot, ACutPayloadIsRefused) {
  Partition p;
  std::string payload = p.payload();
  payload.resize(payload.size() - 3);
  auto r = verify_payload(p.manifest(payload), payload);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("cut"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace statefold::snapshot
