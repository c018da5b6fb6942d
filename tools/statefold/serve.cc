#include <csignal>
#include <iostream>

#include "base/logging.h"
#include "commands.h"
#include "log/log.h"
#include "runtime/engine.h"

namespace statefold::cli {

namespace {
runtime::Engine* g_engine = nullptr;

extern "C" void on_signal(int) {
  // Only sets an atomic flag: the loop finishes the batch in hand, commits and returns.
  if (g_engine != nullptr) g_engine->stop();
}
}  // namespace

Runner add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "Fold events from the topic into the store until SIGTERM or SIGINT");
  struct Args {
    runtime::EngineOptions engine;
    int partitions = 4;
    bool embedded = false;
    std::string log_format = "text";
    std::uint64_t memory_mb = 512;
  };
  auto a = std::make_shared<Args>();
  a->engine.brokers = "127.0.0.1:9092";
  cmd->add_option("--brokers", a->engine.brokers, "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")->capture_default_str();
  cmd->add_option("--topic", a->engine.topic, "Event topic")->capture_default_str();
  cmd->add_option("--data-dir", a->engine.data_dir, "Directory of the RocksDB store (created if missing)")->required();
  cmd->add_option("--dead-letter-topic", a->engine.dead_letter_topic, "Where undecodable or invalid records go")
      ->capture_default_str();
  cmd->add_option("--group", a->engine.group, "Kafka consumer group")->capture_default_str();
  cmd->add_option("--partitions", a->partitions, "Partitions of the event topic when serve creates it")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  cmd->add_option("--max-batch", a->engine.max_batch, "Most records folded in one store batch")
      ->capture_default_str()->check(CLI::Range(1, 1000000));
  cmd->add_option("--memory-budget-mb", a->memory_mb,
                  "One budget for RocksDB cache and write buffers and Kafka's prefetch queue")
      ->capture_default_str()->check(CLI::Range(32, 1 << 20));
  cmd->add_flag("--sync", a->engine.sync_writes, "fsync every batch (survives power loss without re-reading Kafka)");
  cmd->add_option("--log-format", a->log_format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->add_flag("--embedded-kafka", a->embedded,
                "Run librdkafka's in-process mock cluster instead of a broker: a try-out without Java. "
                "It KEEPS NOTHING after exit (the store does, but its offsets then point into a log that is gone)");
  return [a]() {
    base::set_log_format(a->log_format == "json" ? base::LogFormat::json : base::LogFormat::text);
    a->engine.memory_budget_bytes = a->memory_mb << 20;
    std::unique_ptr<log::EmbeddedCluster> cluster;
    if (a->embedded) {
      auto started = log::EmbeddedCluster::start();
      if (!started) {
        std::cerr << "statefold serve: " << started.error().message << "\n";
        return kFailure;
      }
      cluster = std::move(*started);
      a->engine.brokers = cluster->bootstrap_servers();
      for (const auto& [topic, n] : {std::pair{a->engine.topic, a->partitions}, std::pair{a->engine.dead_letter_topic, 1}}) {
        if (auto r = cluster->create_topic(topic, n); !r) {
          std::cerr << "statefold serve: " << r.error().message << "\n";
          return kFailure;
        }
      }
      base::log_warn("EMBEDDED KAFKA: librdkafka's in-process mock cluster; every event is lost when this process exits",
                     {{"brokers", a->engine.brokers}});
    } else {
      for (const auto& [topic, n] : {std::pair{a->engine.topic, a->partitions}, std::pair{a->engine.dead_letter_topic, 1}}) {
        if (auto r = log::ensure_topic(a->engine.brokers, topic, n); !r) {
          std::cerr << "statefold serve: " << r.error().message << "\n";
          return kFailure;
        }
      }
    }
    auto engine = runtime::Engine::open(a->engine);
    if (!engine) {
      std::cerr << "statefold serve: " << engine.error().message << "\n";
      return kFailure;
    }
    g_engine = engine->get();
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    auto result = (*engine)->run();
    g_engine = nullptr;
    if (!result) {
      base::log_error("engine failed", {{"error", result.error().message}});
      return kFailure;
    }
    return kOk;
  };
}

}  // namespace statefold::cli
