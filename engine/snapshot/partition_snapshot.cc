#include "engine/snapshot/partition_snapshot.h"

#include <boost/json.hpp>

#include <chrono>
#include <map>
#include <random>

#include "engine/base/hex.h"
#include "engine/base/sha256.h"
#include "engine/base/time.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"

namespace statefold::snapshot {

namespace json = boost::json;

namespace {

constexpr std::size_t kIdBytes = 16;
constexpr std::chrono::milliseconds kDeliveryTimeout{60000};

std::string key_prefix(const std::string& events_topic, std::int32_t partition) {
  std::string k = events_topic;
  k.append("/").append(std::to_string(partition)).append("/");
  return k;
}

std::string random_id() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string id(kIdBytes, '\0');
  for (std::size_t i = 0; i < kIdBytes; i += 8) {
    const std::uint64_t r = rng();
    for (std::size_t j = 0; j < 8; ++j) id[i + j] = static_cast<char>((r >> (8 * j)) & 0xff);
  }
  return id;
}

void append_be32(std::string& out, std::size_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t read_be32(std::string_view bytes) {
  std::uint32_t v = 0;
  for (std::size_t i = 0; i < 4; ++i) v = v << 8 | static_cast<std::uint8_t>(bytes[i]);
  return v;
}

// The payload's entries; error if it is cut or malformed.
base::Result<std::vector<std::pair<std::string_view, std::string_view>>> entries_of(std::string_view payload) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  for (std::size_t at = 0; at < payload.size();) {
    if (payload.size() - at < 8) return base::make_error("the payload is cut at byte " + std::to_string(at));
    const std::size_t key_size = read_be32(payload.substr(at));
    const std::size_t value_size = read_be32(payload.substr(at + 4));
    at += 8;
    if (payload.size() - at < key_size + value_size) {
      return base::make_error("the payload is cut at byte " + std::to_string(at));
    }
    out.emplace_back(payload.substr(at, key_size), payload.substr(at + key_size, value_size));
    at += key_size + value_size;
  }
  return out;
}

}  // namespace

std::string partition_manifest_json(const PartitionManifest& m) {
  json::object o{{"id", m.id},
                 {"events_topic", m.events_topic},
                 {"partition", m.partition},
                 {"partition_count", m.partition_count},
                 {"schema_version", m.schema_version},
                 {"next_offset", m.next_offset},
                 {"chunks", m.chunks},
                 {"bytes", m.bytes},
                 {"sha256", m.sha256},
                 {"store_hash", m.store_hash},
                 {"sessions", m.sessions},
                 {"created_at", m.created_at},
                 {"instance", m.instance}};
  return json::serialize(o);
}

base::Result<PartitionManifest> parse_partition_manifest(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return base::make_error(base::ErrorCode::invalid_argument, "the manifest is not a JSON object");
  try {
    const json::object& o = v.as_object();
    PartitionManifest m;
    m.id = json::value_to<std::string>(o.at("id"));
    m.events_topic = json::value_to<std::string>(o.at("events_topic"));
    m.partition = json::value_to<std::int32_t>(o.at("partition"));
    m.partition_count = json::value_to<int>(o.at("partition_count"));
    m.schema_version = json::value_to<std::uint64_t>(o.at("schema_version"));
    m.next_offset = json::value_to<std::int64_t>(o.at("next_offset"));
    m.chunks = json::value_to<std::uint64_t>(o.at("chunks"));
    m.bytes = json::value_to<std::uint64_t>(o.at("bytes"));
    m.sha256 = json::value_to<std::string>(o.at("sha256"));
    m.store_hash = json::value_to<std::string>(o.at("store_hash"));
    m.sessions = json::value_to<std::uint64_t>(o.at("sessions"));
    m.created_at = json::value_to<std::string>(o.at("created_at"));
    m.instance = json::value_to<std::string>(o.at("instance"));
    return m;
  } catch (const std::exception& e) {
    return base::make_error(base::ErrorCode::invalid_argument, std::string("the manifest lacks a field: ") + e.what());
  }
}

base::Result<void> verify_payload(const PartitionManifest& m, std::string_view payload) {
  auto damaged = [&](const std::string& what) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "snapshot " + m.id + " of partition " + std::to_string(m.partition) + ": " + what);
  };
  if (payload.size() != m.bytes) {
    return damaged("the payload has " + std::to_string(payload.size()) + " bytes, the manifest says " +
                   std::to_string(m.bytes));
  }
  if (base::to_hex(base::sha256(payload)) != m.sha256) return damaged("the payload's SHA-256 differs from the manifest's");
  auto entries = entries_of(payload);
  if (!entries) return damaged(entries.error().message);
  // The state is what the manifest says it is: every session header's state hash is the hash of its fields, every
  // session lives in this partition, and together they give the partition's store hash. The entries are read where
  // they lie in the payload (in key order, as the store held them), not copied.
  std::vector<std::uint8_t> store_hash(32, 0);
  std::uint64_t sessions = 0;
  std::string problem;
  std::optional<std::string_view> next;
  std::optional<std::string_view> summary;
  const std::string offset_key = fold::key::offset(m.partition);
  for (const auto& [k, v] : *entries) {
    if (k == offset_key) next = v;
    if (k == fold::key::kSummary) summary = v;
    if (k.empty() || k[0] != fold::key::kHeader) continue;
    const std::string_view session = k.substr(1);
    try {
      // Copied out of the payload first: a FlatBuffer must be read where it is aligned, and in the payload it sits
      // wherever the bytes before it left it (UBSan caught the misaligned loads).
      const state::SessionHeaderT header = fold::decode_header(std::string(v));
      const base::Digest hash = fold::state_hash(header);
      if (!std::equal(hash.begin(), hash.end(), header.state_hash.begin(), header.state_hash.end())) {
        problem = "session " + std::string(session) + "'s header does not hash to its state hash";
        break;
      }
      const base::Digest term = fold::store_hash_term(session, hash);
      for (std::size_t i = 0; i < term.size(); ++i) store_hash[i] ^= term[i];
    } catch (const std::exception& e) {
      problem = "session " + std::string(session) + "'s header is damaged: " + e.what();
      break;
    }
    if (log::partition_for_key(session, m.partition_count) != m.partition) {
      problem = "session " + std::string(session) + " does not belong on partition " + std::to_string(m.partition);
      break;
    }
    ++sessions;
  }
  if (!problem.empty()) return damaged(problem);
  if (!next || static_cast<std::int64_t>(fold::key::read_be64(*next)) != m.next_offset) {
    return damaged("the state's next offset is not the manifest's " + std::to_string(m.next_offset));
  }
  const std::string computed = base::to_hex(std::span<const std::uint8_t>(store_hash));
  std::string summarised(64, '0');  // no summary: an empty partition's
  try {
    if (summary) {
      const std::string aligned(*summary);  // FlatBuffers' verifier checks alignment; the payload keeps none
      summarised = base::to_hex(std::span<const std::uint8_t>(fold::decode_summary(aligned).store_hash));
    }
  } catch (const std::exception& e) {
    return damaged(std::string("its summary is damaged: ") + e.what());
  }
  if (computed != summarised || computed != m.store_hash) {
    return damaged("its sessions hash to store hash " + computed + ", its summary says " + summarised +
                   " and the manifest " + m.store_hash);
  }
  if (sessions != m.sessions) {
    return damaged("it holds " + std::to_string(sessions) + " sessions, the manifest says " + std::to_string(m.sessions));
  }
  return {};
}

std::string default_snapshot_topic(const std::string& events_topic) { return events_topic + ".snapshots"; }

PartitionSnapshots::PartitionSnapshots(PartitionSnapshotOptions options) : _options(std::move(options)) {
  if (_options.topic.empty()) _options.topic = default_snapshot_topic(_options.events_topic);
}
PartitionSnapshots::~PartitionSnapshots() = default;

base::Result<void> PartitionSnapshots::ensure_topic(int partitions) const {
  if (auto made = log::ensure_topic(_options.brokers, _options.topic, partitions, _options.kafka_properties,
                                    {{"cleanup.policy", "compact"}});
      !made) {
    return made;
  }
  auto count = log::partition_count(_options.brokers, _options.topic);
  if (!count) return count.error();
  if (*count < partitions) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "the snapshot topic " + _options.topic + " has " + std::to_string(*count) +
                                " partitions, fewer than the " + std::to_string(partitions) + " of " +
                                _options.events_topic + ": name another (--snapshots-topic)");
  }
  return {};
}

base::Result<PartitionManifest> PartitionSnapshots::publish(const store::Store& store, std::int32_t partition) {
  if (!_producer) {
    log::ProducerOptions producer_options;
    producer_options.brokers = _options.brokers;
    producer_options.client_id = "statefold-snapshots";
    producer_options.delivery_timeout = kDeliveryTimeout;
    producer_options.extra = _options.kafka_properties;
    auto producer = log::Producer::create(producer_options);
    if (!producer) return producer.error();
    _producer = std::move(*producer);
  }
  PartitionManifest m;
  m.events_topic = _options.events_topic;
  m.partition = partition;
  m.partition_count = store.partition_count();
  m.schema_version = fold::kStateSchemaVersion;
  m.instance = _options.instance;
  m.created_at = base::utc_now();
  // One pinned view: the state and the offset it covers are of the same instant.
  const auto view = store.partition_snapshot(partition);
  std::string payload;
  std::optional<std::int64_t> next;
  const std::string offset_key = fold::key::offset(partition);
  view->scan("", [&](std::string_view k, std::string_view v) {
    append_be32(payload, k.size());
    append_be32(payload, v.size());
    payload.append(k).append(v);
    if (!k.empty() && k[0] == fold::key::kHeader) ++m.sessions;
    if (k == offset_key) next = static_cast<std::int64_t>(fold::key::read_be64(v));
    return true;
  });
  if (!next) {
    return base::make_error(base::ErrorCode::not_found, "partition " + std::to_string(partition) + " has no state here");
  }
  m.next_offset = *next;
  m.bytes = payload.size();
  m.sha256 = base::to_hex(base::sha256(payload));
  m.store_hash = base::to_hex(std::span<const std::uint8_t>(fold::load_summary(*view).store_hash));
  const std::string id = random_id();
  m.id = base::to_hex(id);
  const std::string prefix = key_prefix(_options.events_topic, partition);
  const std::size_t chunk = std::max<std::size_t>(1, _options.chunk_bytes);
  for (std::size_t at = 0; at < payload.size() || m.chunks == 0; at += chunk) {
    std::string value = id;
    value.append(std::string_view(payload).substr(std::min(at, payload.size()), chunk));
    const std::string key = prefix + "chunk/" + std::to_string(m.chunks);
    auto sent = _producer->send(_options.topic, key,
                                std::span(reinterpret_cast<const std::uint8_t*>(value.data()), value.size()), {}, {},
                                partition);
    if (!sent) return sent.error();
    ++m.chunks;
    if (at + chunk >= payload.size()) break;
  }
  // The manifest only once every chunk is in: a reader never finds a manifest whose chunks are not all there.
  if (auto flushed = _producer->flush(kDeliveryTimeout); !flushed) return flushed.error();
  const std::string manifest = partition_manifest_json(m);
  auto sent = _producer->send(_options.topic, prefix + "manifest",
                              std::span(reinterpret_cast<const std::uint8_t*>(manifest.data()), manifest.size()), {},
                              {}, partition);
  if (!sent) return sent.error();
  if (auto flushed = _producer->flush(kDeliveryTimeout); !flushed) return flushed.error();
  return m;
}

base::Result<Restored> PartitionSnapshots::restore(store::Store& store, std::int32_t partition) const {
  const std::string prefix = key_prefix(_options.events_topic, partition);
  const std::string manifest_key = prefix + "manifest";
  const std::string chunk_prefix = prefix + "chunk/";
  // The chunks of the snapshot being read (they come before its manifest), and the newest complete snapshot.
  std::string run_id;
  std::map<std::uint64_t, std::string> run;
  std::optional<PartitionManifest> best;
  std::map<std::uint64_t, std::string> best_chunks;
  std::string why_not;
  Restored restored;
  using Clock = std::chrono::steady_clock;
  auto ms_since = [](Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); };
  auto started = Clock::now();
  auto read = log::read_partition(
      _options.brokers, _options.topic, partition,
      [&](log::StoredRecord&& r) {
        restored.bytes_read += r.value.size() + (r.key ? r.key->size() : 0);
        if (!r.key) return;
        const std::string_view value(reinterpret_cast<const char*>(r.value.data()), r.value.size());
        if (*r.key == manifest_key) {
          auto m = parse_partition_manifest(value);
          if (!m) {
            why_not = "a manifest at offset " + std::to_string(r.offset) + " is unreadable: " + m.error().message;
            return;
          }
          bool complete = base::to_hex(run_id) == m->id;
          for (std::uint64_t i = 0; complete && i < m->chunks; ++i) complete = run.contains(i);
          if (!complete) {
            why_not = "snapshot " + m->id + " lacks chunks (compacted away by a newer snapshot that never finished?)";
            return;
          }
          best = std::move(*m);
          best_chunks = std::move(run);
          run.clear();
          run_id.clear();
        } else if (r.key->starts_with(chunk_prefix) && value.size() >= kIdBytes) {
          const std::string id(value.substr(0, kIdBytes));
          if (id != run_id) {
            run_id = id;
            run.clear();
          }
          try {
            run[std::stoull(r.key->substr(chunk_prefix.size()))] = std::string(value.substr(kIdBytes));
          } catch (const std::exception&) {
            why_not = "a chunk at offset " + std::to_string(r.offset) + " has a malformed key";
          }
        }
      },
      _options.kafka_properties);
  if (!read) return read.error();
  const std::string where = "partition " + std::to_string(partition);
  if (!best) {
    return base::make_error(base::ErrorCode::not_found,
                            "no usable snapshot of " + where + " on " + _options.topic + (why_not.empty() ? "" : ": ") + why_not);
  }
  const PartitionManifest& m = *best;
  if (m.events_topic != _options.events_topic || m.partition != partition) {
    return base::make_error(base::ErrorCode::invalid_argument, "snapshot " + m.id + " on " + where + " is of " +
                                                                   m.events_topic + " partition " +
                                                                   std::to_string(m.partition));
  }
  if (m.schema_version != fold::kStateSchemaVersion) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "snapshot " + m.id + " of " + where + " has state schema version " +
                                std::to_string(m.schema_version) + "; this build reads version " +
                                std::to_string(fold::kStateSchemaVersion));
  }
  if (m.partition_count != store.partition_count()) {
    return base::make_error(base::ErrorCode::invalid_argument,
                            "snapshot " + m.id + " of " + where + " was taken over " +
                                std::to_string(m.partition_count) + " partitions; the topic has " +
                                std::to_string(store.partition_count()));
  }
  std::string payload;
  payload.reserve(m.bytes);
  for (std::uint64_t i = 0; i < m.chunks; ++i) payload.append(best_chunks[i]);
  best_chunks.clear();
  restored.read_ms = ms_since(started);
  started = Clock::now();
  if (auto verified = verify_payload(m, payload); !verified) return verified.error();
  restored.verify_ms = ms_since(started);
  started = Clock::now();
  auto entries = entries_of(payload);
  if (!entries) return entries.error();
  if (auto loaded = store.load_partition(partition, *entries); !loaded) return loaded.error();
  restored.load_ms = ms_since(started);
  restored.manifest = m;
  return restored;
}

}  // namespace statefold::snapshot
