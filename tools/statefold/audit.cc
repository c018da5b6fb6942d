#include <iostream>

#include "commands.h"
#include "config.h"
#include "connectors/audit/audit.h"
#include "engine/log/log.h"
#include "engine/store/store.h"

namespace statefold::cli {

Runner add_audit(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "audit", "Check a session's history against the log: every accepted event is read back from Kafka by its "
               "offset and checked against the stored chain hash; every inference receipt's request is rendered "
               "again from the state version it names and checked against its request hash; refusals are listed "
               "with their reasons. Exit 5 on any mismatch, naming the first bad version");
  struct Args {
    std::string brokers = "127.0.0.1:9092";
    std::string topic{log::kDefaultTopic};
    std::string data_dir;
    std::string session;
    std::string format = "text";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--brokers", a->brokers, "Kafka bootstrap servers")->capture_default_str()->envname("STATEFOLD_BROKERS");
  cmd->add_option("--topic", a->topic, "Event topic")->capture_default_str()->envname("STATEFOLD_TOPIC");
  cmd->add_option("--data-dir", a->data_dir, "The engine's data directory (read-only)")->required();
  cmd->add_option("--session", a->session, "The session to audit")->required();
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  auto kafka_config = std::make_shared<std::string>();
  add_kafka_config_option(cmd, *kafka_config);
  return [a, kafka_config]() {
    if (!kafka_config_ok(*kafka_config, "audit")) return kUsage;
    store::Options options;
    options.path = a->data_dir + "/store";
    options.read_only = true;
    auto store = store::Store::open(options);
    if (!store) {
      std::cerr << "statefold audit: " << store.error().message << "\n";
      return kNotFound;
    }
    auto report = audit::audit_session(**store, a->session, [&](std::int32_t partition, const auto& offsets) {
      return log::read_records(a->brokers, a->topic, partition, offsets);
    });
    if (!report) {
      std::cerr << "statefold audit: " << report.error().message << "\n";
      return kFailure;
    }
    if (!*report) {
      std::cerr << "statefold audit: no session " << a->session << " in " << a->data_dir << "\n";
      return kNotFound;
    }
    std::cout << (a->format == "json" ? audit::to_json(**report) : audit::to_text(**report));
    return (*report)->ok() ? kOk : kMismatch;
  };
}

}  // namespace statefold::cli
