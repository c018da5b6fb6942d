#include <iostream>

#include "commands.h"
#include "engine/base/logging.h"
#include "engine/http/http.h"
#include "engine/snapshot/snapshot.h"
#include "engine/store/store.h"

namespace statefold::cli {

Runner add_snapshot(CLI::App& app) {
  auto* cmd = app.add_subcommand("snapshot", "Consistent checkpoints of a store: create, list, restore");
  cmd->require_subcommand(1);
  struct Args {
    std::string data_dir;
    std::string http_address = "127.0.0.1:8080";
    std::string id;
    std::string format = "text";
  };
  auto a = std::make_shared<Args>();
  auto* create = cmd->add_subcommand(
      "create", "Take a snapshot. If serve holds the store, it is asked over its HTTP API to take it while serving");
  auto* list = cmd->add_subcommand("list", "List snapshots, newest first");
  auto* restore = cmd->add_subcommand(
      "restore", "Replace the store with a snapshot (serve stopped). The current store is moved aside, not deleted; "
                 "serve then continues from the snapshot's offsets");
  for (auto* sub : {create, list, restore}) {
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

  return [a, create, list, restore, print]() {
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
