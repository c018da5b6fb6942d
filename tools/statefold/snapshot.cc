#include <iostream>

#include "commands.h"
#include "engine/base/logging.h"
#include "engine/http/http.h"
#include "engine/log/log.h"
#include "engine/snapshot/partition_snapshot.h"
#include "engine/snapshot/snapshot.h"
#include "engine/store/store.h"

namespace statefold::cli {

namespace {

template <typename Args>
Exit publish_partitions(const Args& a) {
  store::Options options;
  options.path = a.data_dir + "/store";
  options.read_only = true;  // beside a running serve
  options.create_if_missing = false;
  options.memory_budget_bytes = 64ull << 20;
  auto store = store::Store::open(options);
  if (!store) {
    std::cerr << "statefold snapshot publish: " << store.error().message << "\n";
    return kFailure;
  }
  snapshot::PartitionSnapshotOptions snapshot_options;
  snapshot_options.brokers = a.brokers;
  snapshot_options.topic = a.snapshots_topic;
  snapshot_options.events_topic = a.topic;
  snapshot_options.instance = a.data_dir;
  snapshot::PartitionSnapshots snapshots(snapshot_options);
  if (auto made = snapshots.ensure_topic((*store)->partition_count()); !made) {
    std::cerr << "statefold snapshot publish: " << made.error().message << "\n";
    return kFailure;
  }
  const auto partitions = a.partitions.empty() ? (*store)->partitions() : a.partitions;
  if (partitions.empty()) {
    std::cerr << "statefold snapshot publish: the store at " << options.path << " has no partition's state\n";
    return kFailure;
  }
  Exit status = kOk;
  for (std::int32_t p : partitions) {
    auto m = snapshots.publish(**store, p);
    if (!m) {
      std::cerr << "statefold snapshot publish: partition " << p << ": " << m.error().message << "\n";
      status = kFailure;
      continue;
    }
    if (a.format == "json") {
      std::cout << snapshot::partition_manifest_json(*m) << "\n";
    } else {
      std::cout << "partition " << p << ": snapshot " << m->id << " up to offset " << m->next_offset << ", "
                << m->sessions << " sessions, " << m->bytes << " bytes in " << m->chunks << " chunks, store hash "
                << m->store_hash << "\n";
    }
  }
  return status;
}

}  // namespace

Runner add_snapshot(CLI::App& app) {
  auto* cmd = app.add_subcommand("snapshot", "Consistent checkpoints of a store: create, list, restore, and publish "
                                              "partition snapshots for other instances");
  cmd->require_subcommand(1);
  struct Args {
    std::string data_dir;
    std::string http_address = "127.0.0.1:8080";
    std::string id;
    std::string format = "text";
    std::string brokers;
    std::string topic{log::kDefaultTopic};
    std::string snapshots_topic;  // empty: snapshot::default_snapshot_topic
    std::vector<std::int32_t> partitions;
  };
  auto a = std::make_shared<Args>();
  auto* create = cmd->add_subcommand(
      "create", "Take a snapshot. If serve holds the store, it is asked over its HTTP API to take it while serving");
  auto* list = cmd->add_subcommand("list", "List snapshots, newest first");
  auto* restore = cmd->add_subcommand(
      "restore", "Replace the store with a snapshot (serve stopped). The current store is moved aside, not deleted; "
                 "serve then continues from the snapshot's offsets");
  auto* publish = cmd->add_subcommand(
      "publish", "Publish partition snapshots of the store (serve may be running) on the snapshots topic, from which "
                 "an instance that gains a partition restores it instead of folding its whole log (docs/scaling.md)");
  publish->add_option("--brokers", a->brokers, "Kafka bootstrap servers")->required()->envname("STATEFOLD_BROKERS");
  publish->add_option("--topic", a->topic, "The event topic the store folds")->capture_default_str()->envname("STATEFOLD_TOPIC");
  publish->add_option("--snapshots-topic", a->snapshots_topic,
                      "Compacted topic of partition snapshots (default: TOPIC.snapshots)")
      ->envname("STATEFOLD_SNAPSHOTS_TOPIC");
  publish->add_option("--partition", a->partitions, "A partition to publish (repeatable; default: every one with state)");
  for (auto* sub : {create, list, restore, publish}) {
    sub->add_option("--data-dir", a->data_dir, "The engine's data directory")->required()->envname("STATEFOLD_DATA_DIR");
    sub->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  }
  create->add_option("--http-address", a->http_address, "serve's HTTP API, used when serve holds the store")
      ->capture_default_str()->envname("STATEFOLD_HTTP_ADDRESS");
  restore->add_option("--id", a->id, "The snapshot to restore (see snapshot list)")->required();

  auto print = [a](const snapshot::Manifest& m) {
    if (a->format == "json") {
      std::cout << snapshot::manifest_json(m) << "\n";
      return;
    }
    std::cout << m.id << "  " << m.created_at << "  sessions " << m.sessions << "  events " << m.events_applied
              << "  schema v" << m.schema_version << "  offsets";
    for (const auto& [p, o] : m.offsets) std::cout << " " << p << ":" << o;
    std::cout << "\n    store hash " << m.store_hash << "\n";
  };

  return [a, create, list, restore, publish, print]() {
    if (publish->parsed()) return publish_partitions(*a);
    if (list->parsed()) {
      for (const auto& m : snapshot::list(a->data_dir)) print(m);
      return kOk;
    }
    if (restore->parsed()) {
      auto restored = snapshot::restore(a->data_dir, a->id);
      if (!restored) {
        std::cerr << "statefold snapshot restore: " << restored.error().message << "\n";
        return kFailure;
      }
      std::cout << "restored snapshot " << restored->id << " into " << a->data_dir << "/store\n";
      print(*restored);
      return kOk;
    }
    (void)create;
    store::Options options;
    options.path = a->data_dir + "/store";
    options.create_if_missing = false;
    options.memory_budget_bytes = 64ull << 20;
    auto store = store::Store::open(options);
    if (store) {
      auto taken = snapshot::create(**store, a->data_dir);
      if (!taken) {
        std::cerr << "statefold snapshot create: " << taken.error().message << "\n";
        return kFailure;
      }
      print(*taken);
      return kOk;
    }
    // Held by a running serve (RocksDB's lock): ask it to take the snapshot while it serves.
    const auto address = parse_host_port(a->http_address);
    if (!address) {
      std::cerr << "statefold snapshot create: --http-address: expected HOST:PORT\n";
      return kUsage;
    }
    auto answer = http::call(address->first, address->second, "POST", "/v1/snapshots");
    if (!answer || answer->status != 201) {
      std::cerr << "statefold snapshot create: the store is in use (" << store.error().message
                << ") and serve at " << a->http_address << " did not take the snapshot: "
                << (answer ? answer->body : answer.error().message) << "\n";
      return kFailure;
    }
    std::cout << answer->body << "\n";
    return kOk;
  };
}

}  // namespace statefold::cli
