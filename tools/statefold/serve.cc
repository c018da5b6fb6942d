#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "commands.h"
#include "config.h"
#include "connectors/gateway/gateway.h"
#include "connectors/upstream/routing.h"
#include "engine/api/api.h"
#include "engine/auth/auth.h"
#include "engine/append/append.h"
#include "engine/base/hex.h"
#include "engine/base/logging.h"
#include "engine/base/sha256.h"
#include "engine/cluster/cluster.h"
#include "engine/cluster/group_sessions.h"
#include "engine/cluster/group_usage.h"
#include "engine/cluster/group_usage_rows.h"
#include "engine/fold/read.h"
#include "engine/http/http.h"
#include "engine/log/log.h"
#include "engine/metrics/metrics.h"
#include "engine/runtime/engine.h"
#include "engine/snapshot/partition_snapshot.h"
#include "engine/snapshot/snapshot.h"
#include "engine/view/view.h"

#include <atomic>
#include <cctype>
#include <cstdio>
#include <random>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace statefold::cli {

namespace {
runtime::Engine* g_engine = nullptr;
std::atomic<bool> g_reload_tls{false};

extern "C" void on_signal(int) {
  // Only sets an atomic flag: the loop finishes the batch in hand, commits and returns.
  if (g_engine != nullptr) g_engine->stop();
}

extern "C" void on_sighup(int) { g_reload_tls.store(true); }

// The soft limit on open files raised to the hard one: the store's files, Kafka's sockets and the HTTP clients
// share it, and distributions often start processes at 1,024.
void raise_file_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return;
  const auto before = limit.rlim_cur;
  limit.rlim_cur = limit.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &limit) == 0) {
    base::log_info("open files limit raised",
                   {{"from", std::to_string(before)},
                    {"to", limit.rlim_max == RLIM_INFINITY ? "unlimited" : std::to_string(limit.rlim_max)}});
  }
}

// The gateway reads the engine's store and asks it who folds a session.
class EngineState final : public gateway::StateSource {
 public:
  explicit EngineState(const runtime::Engine& engine) : _engine(engine) {}
  std::unique_ptr<fold::Reader> snapshot() const override { return _engine.store().snapshot(); }
  runtime::Ownership ownership(std::string_view session_id) const override { return _engine.ownership(session_id); }

 private:
  const runtime::Engine& _engine;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

// A refused request in OpenAI's error shape, so the SDKs raise AuthenticationError, PermissionDeniedError or
// RateLimitError with the message.
http::Response refusal_response(const auth::Refusal& refusal) {
  http::Response response = api::error_response(refusal.status, refusal.message, {}, refusal.code);
  if (refusal.status == 401) response.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (refusal.retry_after.count() > 0) {
    response.headers.emplace_back("Retry-After", std::to_string(refusal.retry_after.count()));
  }
  return response;
}

// A budget query's tokens in each partition this instance's store holds: its share of cluster::GroupUsage.
std::function<base::Result<cluster::PartitionTokens>(const cluster::UsageQuery&)> local_usage(
    const runtime::Engine& engine) {
  return [&engine](const cluster::UsageQuery& query) -> base::Result<cluster::PartitionTokens> {
    cluster::PartitionTokens out;
    const auto tenant = query.tenant ? std::optional<std::string_view>(*query.tenant) : std::nullopt;
    for (std::int32_t partition : engine.store().partitions()) {
      auto tokens = fold::budget_tokens(*engine.store().partition(partition), tenant, query.from_day,
                                        query.through_day, query.key);
      if (!tokens) return tokens.error();
      if (*tokens > 0) out[partition] = *tokens;
    }
    return out;
  };
}

// Of `partitions`, those this instance answers a group query for now: it owns them and is not catching up on them.
std::set<std::int32_t> answerable_partitions(const runtime::Engine& engine, const std::vector<std::int32_t>& partitions) {
  const auto owned = engine.assignment();
  const auto moving = engine.moving();
  auto has = [](const std::vector<std::int32_t>& v, std::int32_t p) { return std::find(v.begin(), v.end(), p) != v.end(); };
  std::set<std::int32_t> out;
  for (std::int32_t p : partitions) {
    if (has(owned, p) && !has(moving, p)) out.insert(p);
  }
  return out;
}

// A page of the sessions of `partitions` in this instance's store: its share of cluster::GroupSessions. Partitions
// it does not own, or is still catching up on, it cannot list.
std::function<base::Result<cluster::SessionsPage>(const cluster::SessionsQuery&, const std::vector<std::int32_t>&)>
local_sessions(const runtime::Engine& engine) {
  return [&engine](const cluster::SessionsQuery& query,
                   const std::vector<std::int32_t>& partitions) -> base::Result<cluster::SessionsPage> {
    const auto answerable = answerable_partitions(engine, partitions);
    std::vector<cluster::SessionsPage> pages(1);  // the first: the partitions not here
    for (std::int32_t partition : partitions) {
      if (!answerable.contains(partition)) {
        pages.front().not_here.push_back(partition);
        continue;
      }
      cluster::SessionsPage& page = pages.emplace_back();
      auto more = view::visit_session_rows(
          *engine.store().partition(partition), query.prefix, query.cursor, query.limit,
          [&page](std::string_view id, std::uint64_t version, std::string_view status) {
            page.sessions.push_back({std::string(id), version, std::string(status)});
          });
      if (!more) return more.error();
      page.more = *more;
    }
    return cluster::merge_pages(std::move(pages), query.limit);
  };
}

// The usage rows of `partitions` in this instance's store: its share of cluster::GroupUsageRows. Partitions it does
// not own, or is still catching up on, it cannot read.
std::function<base::Result<cluster::UsageRows>(const cluster::UsageRowsQuery&, const std::vector<std::int32_t>&)>
local_usage_rows(const runtime::Engine& engine) {
  return [&engine](const cluster::UsageRowsQuery& query,
                   const std::vector<std::int32_t>& partitions) -> base::Result<cluster::UsageRows> {
    const auto answerable = answerable_partitions(engine, partitions);
    const auto tenant = query.tenant ? std::optional<std::string_view>(*query.tenant) : std::nullopt;
    std::vector<cluster::UsageRows> shares(1);  // the first: the partitions not here
    for (std::int32_t partition : partitions) {
      if (!answerable.contains(partition)) {
        shares.front().not_here.push_back(partition);
        continue;
      }
      cluster::UsageRows& share = shares.emplace_back();
      auto visited = fold::visit_usage(*engine.store().partition(partition), tenant, query.from_day,
                                       query.through_day, [&share](const state::UsageT& r) {
                                         share.rows.push_back({r.tenant, r.day, r.caller, r.model, r.calls, r.failed,
                                                               r.input_tokens, r.output_tokens, r.cached_tokens});
                                       });
      if (!visited) return visited.error();
    }
    return cluster::merge_usage_rows(std::move(shares));
  };
}

// A group's usage rows in the store's own form, which view::usage_json renders.
std::vector<state::UsageT> stored_usage_rows(std::vector<cluster::UsageRow> rows) {
  std::vector<state::UsageT> out;
  out.reserve(rows.size());
  for (cluster::UsageRow& r : rows) {
    state::UsageT row;
    row.tenant = std::move(r.tenant);
    row.day = std::move(r.day);
    row.caller = std::move(r.key);
    row.model = std::move(r.model);
    row.calls = r.calls;
    row.failed = r.failed;
    row.input_tokens = r.input_tokens;
    row.output_tokens = r.output_tokens;
    row.cached_tokens = r.cached_tokens;
    out.push_back(std::move(row));
  }
  return out;
}

// The gateway's id secret: the named file's content (without trailing whitespace), or the data dir's own,
// made of 32 random bytes on first start (owner-only). Ids outlive a rebuild of the store only with a secret kept
// elsewhere, so an operator who rebuilds or runs several instances names one.
base::Result<std::string> load_id_secret(const std::string& named, const std::string& data_dir) {
  const bool made_here = named.empty();
  const std::filesystem::path path = made_here ? std::filesystem::path(data_dir) / "gateway-id.secret"
                                                 : std::filesystem::path(named);
  if (made_here && !std::filesystem::exists(path)) {
    std::random_device random("/dev/urandom");
    std::string secret;
    for (int i = 0; i < 8; ++i) {
      char word[9];
      std::snprintf(word, sizeof word, "%08x", random());
      secret += word;
    }
    {
      std::ofstream out(path, std::ios::trunc);
      out << secret << "\n";
      if (!out) return base::make_error("cannot write the gateway's id secret to " + path.string());
    }
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    base::log_info("gateway: made an id secret (name it with --id-secret-file to share it between instances)",
                   {{"path", path.string()}});
  }
  std::ifstream in(path);
  std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof()) return base::make_error("--id-secret-file " + path.string() + ": cannot be read");
  while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  if (secret.size() < 16) {
    return base::make_error("--id-secret-file " + path.string() + ": the secret has " +
                            std::to_string(secret.size()) + " bytes; at least 16 are needed");
  }
  return secret;
}

// http://HOST:PORT of the listener, with this host's name in place of a wildcard address.
double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// A partition gained with no state here, from its newest snapshot; nullopt (folded from the log) when none is usable.
std::optional<std::int64_t> restore_partition(const snapshot::PartitionSnapshots& snapshots, std::int32_t partition,
                                              store::Store& store) {
  const auto start = std::chrono::steady_clock::now();
  auto restored = snapshots.restore(store, partition);
  if (!restored) {
    const bool none = restored.error().code == base::ErrorCode::not_found;
    (none ? base::log_info : base::log_warn)(
        none ? "no partition snapshot: the partition is folded from the log"
             : "partition snapshot not used: the partition is folded from the log",
        {{"partition", std::to_string(partition)}, {"why", restored.error().message}});
    return std::nullopt;
  }
  const auto& m = restored->manifest;
  base::log_info("partition restored from a snapshot",
                 {{"partition", std::to_string(partition)}, {"snapshot", m.id},
                  {"next_offset", std::to_string(m.next_offset)}, {"sessions", std::to_string(m.sessions)},
                  {"bytes_read", std::to_string(restored->bytes_read)}, {"ms", std::to_string(ms_since(start))},
                  {"read_ms", std::to_string(restored->read_ms)}, {"verify_ms", std::to_string(restored->verify_ms)},
                  {"load_ms", std::to_string(restored->load_ms)}});
  return m.next_offset;
}

// Publishes every partition folded here (and settled) whose state moved since it was published last.
void publish_partitions(snapshot::PartitionSnapshots& snapshots, const runtime::Engine& engine,
                        std::map<std::int32_t, std::int64_t>& published) {
  const auto moving = engine.moving();
  const auto offsets = engine.store().offsets();
  for (std::int32_t p : engine.assignment()) {
    if (std::find(moving.begin(), moving.end(), p) != moving.end()) continue;
    const auto stored = offsets.find(p);
    if (stored == offsets.end()) continue;
    if (auto last = published.find(p); last != published.end() && last->second == stored->second) continue;
    const auto start = std::chrono::steady_clock::now();
    auto m = snapshots.publish(engine.store(), p);
    if (!m) {
      base::log_warn("partition snapshot not published; will try again",
                     {{"partition", std::to_string(p)}, {"error", m.error().message}});
      continue;
    }
    published[p] = m->next_offset;
    base::log_info("partition snapshot published",
                   {{"partition", std::to_string(p)}, {"snapshot", m->id}, {"next_offset", std::to_string(m->next_offset)},
                    {"sessions", std::to_string(m->sessions)}, {"bytes", std::to_string(m->bytes)},
                    {"chunks", std::to_string(m->chunks)}, {"ms", std::to_string(ms_since(start))}});
  }
}

std::string default_advertise_url(const std::pair<std::string, std::uint16_t>& address, bool tls) {
  std::string host = address.first;
  if (host == "0.0.0.0" || host == "::" || host == "[::]") {
    char name[256] = {};
    host = ::gethostname(name, sizeof name - 1) == 0 ? std::string(name) : "localhost";
  }
  return (tls ? "https://" : "http://") + host + ":" + std::to_string(address.second);
}

}  // namespace

Runner add_serve(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "serve", "Fold events from the topic into the store and serve the HTTP API until SIGTERM or SIGINT.\n"
               "Settings: defaults < --config FILE (TOML) < STATEFOLD_* environment < flags (docs/configuration.md)");
  struct Args {
    runtime::EngineOptions engine;
    int partitions = 4;
    bool embedded = false;
    std::string log_format = "text";
    std::string log_level = "info";
    std::uint64_t memory_mb = 512;
    std::uint64_t disk_reserve_mb = 256;
    std::string http_address = "127.0.0.1:8080";
    int http_threads = 2;
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_connections = 0;
    std::int64_t ready_max_lag = 1000;
    std::uint64_t append_timeout_ms = 10000;
    std::uint64_t snapshot_interval_s = 3600;
    std::size_t snapshot_retention = 3;
    std::size_t gateway_workers = 16;
    bool insecure_no_auth = false;
    std::string tls_cert;
    std::string tls_key;
    std::string tls_client_ca;
    std::string id_secret_file;
    std::string wal = "on";
    std::string advertise_url;
    std::string peer_ca;
    std::string static_membership = "on";
    std::int64_t drop_lost_after_s = 600;
    int standby_replicas = 0;
    std::string partition_snapshots = "on";
    std::uint64_t partition_snapshot_interval_s = 300;
    std::string snapshots_topic;  // empty: snapshot::default_snapshot_topic
    std::string members_topic{cluster::kDefaultTopic};
  };
  auto a = std::make_shared<Args>();
  a->engine.brokers = "127.0.0.1:9092";
  auto config = std::make_shared<std::string>();
  cmd->add_option("--config", *config, "TOML file of settings; keys are the long flag names (brokers = \"...\")")
      ->envname("STATEFOLD_CONFIG");
  auto env = [](CLI::Option* o, const char* name) { return o->envname(name)->capture_default_str(); };
  env(cmd->add_option("--brokers", a->engine.brokers, "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]"),
      "STATEFOLD_BROKERS");
  env(cmd->add_option("--topic", a->engine.topic, "Event topic"), "STATEFOLD_TOPIC");
  env(cmd->add_option("--dead-letter-topic", a->engine.dead_letter_topic, "Where undecodable or invalid records go"),
      "STATEFOLD_DEAD_LETTER_TOPIC");
  env(cmd->add_option("--data-dir", a->engine.data_dir, "Directory of the RocksDB store (created if missing)"),
      "STATEFOLD_DATA_DIR");
  env(cmd->add_option("--group", a->engine.group, "Kafka consumer group"), "STATEFOLD_GROUP");
  env(cmd->add_option("--partitions", a->partitions, "Partitions of the event topic when serve creates it")
          ->check(CLI::Range(1, 1024)),
      "STATEFOLD_PARTITIONS");
  env(cmd->add_option("--max-batch", a->engine.max_batch, "Most records folded in one store batch")
          ->check(CLI::Range(1, 1000000)),
      "STATEFOLD_MAX_BATCH");
  env(cmd->add_option("--memory-budget-mb", a->memory_mb,
                      "One budget for RocksDB cache and write buffers and Kafka's prefetch queue")
          ->check(CLI::Range(32, 1 << 20)),
      "STATEFOLD_MEMORY_BUDGET_MB");
  env(cmd->add_option("--disk-reserve-mb", a->disk_reserve_mb,
                      "Folding pauses (writes get 503, reads go on) while the data dir has less than this free; 0: off")
          ->check(CLI::Range(0, 1 << 24)),
      "STATEFOLD_DISK_RESERVE_MB");
  env(cmd->add_flag("--sync", a->engine.sync_writes, "fsync every batch (survives power loss without re-reading Kafka)"),
      "STATEFOLD_SYNC");
  env(cmd->add_option("--wal", a->wal,
                      "RocksDB's write-ahead log, on or off. Off: cheaper commits, and after a crash the batches not "
                      "yet flushed are read again from Kafka (still exactly once; slower to be ready). Not with --sync")
          ->check(CLI::IsMember({"on", "off"})),
      "STATEFOLD_WAL");
  env(cmd->add_option("--http-address", a->http_address, "HTTP API address HOST:PORT, or off"),
      "STATEFOLD_HTTP_ADDRESS");
  env(cmd->add_option("--http-threads", a->http_threads, "HTTP I/O threads")->check(CLI::Range(1, 64)),
      "STATEFOLD_HTTP_THREADS");
  env(cmd->add_option("--max-body-bytes", a->max_body_bytes, "Largest accepted request body (413 beyond)")
          ->check(CLI::Range(1024, 1 << 30)),
      "STATEFOLD_MAX_BODY_BYTES");
  env(cmd->add_option("--max-connections", a->max_connections,
                      "Open HTTP connections at most; at the limit the longest idle one is closed for a new client, and when none is idle the new one gets 503 (0: the open-files limit less 512)"),
      "STATEFOLD_MAX_CONNECTIONS");
  env(cmd->add_option("--ready-max-lag", a->ready_max_lag, "/readyz: most records a partition may be behind"),
      "STATEFOLD_READY_MAX_LAG");
  env(cmd->add_option("--append-timeout-ms", a->append_timeout_ms,
                      "How long an append waits for its events to be folded (504 beyond)"),
      "STATEFOLD_APPEND_TIMEOUT_MS");
  env(cmd->add_option("--snapshot-interval-s", a->snapshot_interval_s,
                      "Take a snapshot of the store this often while serving (0: never)"),
      "STATEFOLD_SNAPSHOT_INTERVAL_S");
  env(cmd->add_option("--snapshot-retention", a->snapshot_retention, "How many automatic snapshots to keep")
          ->check(CLI::Range(1, 1000)),
      "STATEFOLD_SNAPSHOT_RETENTION");
  env(cmd->add_option("--gateway-workers", a->gateway_workers,
                      "Concurrent gateway turns (each holds a thread while its upstream answers)")
          ->check(CLI::Range(1, 1024)),
      "STATEFOLD_GATEWAY_WORKERS");
  env(cmd->add_option("--log-format", a->log_format, "text or json")->check(CLI::IsMember({"text", "json"})),
      "STATEFOLD_LOG_FORMAT");
  env(cmd->add_option("--log-level", a->log_level, "debug, info, warn or error")
          ->check(CLI::IsMember({"debug", "info", "warn", "error"})),
      "STATEFOLD_LOG_LEVEL");
  env(cmd->add_flag("--insecure-no-auth", a->insecure_no_auth,
                    "Listen beyond loopback with no API keys configured: anyone who reaches the port may do anything"),
      "STATEFOLD_INSECURE_NO_AUTH");
  env(cmd->add_option("--tls-cert", a->tls_cert,
                      "PEM certificate (then intermediates) for HTTPS on --http-address; with --tls-key. "
                      "SIGHUP reads it again"),
      "STATEFOLD_TLS_CERT");
  env(cmd->add_option("--tls-key", a->tls_key, "PEM private key of --tls-cert"), "STATEFOLD_TLS_KEY");
  env(cmd->add_option("--id-secret-file", a->id_secret_file,
                      "File whose content (16 bytes or more) seals the gateway's response, conversation and item "
                      "ids; every instance on the topic must have the same. Default: DATA_DIR/gateway-id.secret, "
                      "made on first start"),
      "STATEFOLD_ID_SECRET_FILE");
  env(cmd->add_option("--tls-client-ca", a->tls_client_ca,
                      "PEM CA: clients must present a certificate it signed (mutual TLS)"),
      "STATEFOLD_TLS_CLIENT_CA");
  env(cmd->add_option("--advertise-url", a->advertise_url,
                      "http(s)://HOST:PORT at which the other instances of the group reach this one's HTTP API, to "
                      "forward it requests for the sessions it folds. Default: --http-address, https:// with "
                      "--tls-cert (with this host's name for 0.0.0.0 or ::)"),
      "STATEFOLD_ADVERTISE_URL");
  env(cmd->add_option("--peer-ca", a->peer_ca,
                      "PEM CA that the other instances' HTTPS certificates chain to, for forwarding to them. Default: "
                      "--tls-client-ca if set, else the system's trusted CAs. With --tls-cert, this instance shows "
                      "that certificate to instances that ask for one (mutual TLS), and SIGHUP reads both again"),
      "STATEFOLD_PEER_CA");
  env(cmd->add_option("--static-membership", a->static_membership,
                      "on: a restart on the same data dir gets its partitions back at once, and a stopped instance's "
                      "partitions move after the group's session timeout (10 s). off: SIGTERM hands them over at once, "
                      "and a restart is a join like any other (docs/scaling.md)")
          ->check(CLI::IsMember({"on", "off"})),
      "STATEFOLD_STATIC_MEMBERSHIP");
  env(cmd->add_option("--drop-lost-after", a->drop_lost_after_s,
                      "Seconds after which the state of a partition another instance folds now is dropped from this "
                      "one's store (back sooner, it resumes from that state; later, it is folded again from the log). "
                      "0: kept for ever")
          ->check(CLI::NonNegativeNumber),
      "STATEFOLD_DROP_LOST_AFTER");
  env(cmd->add_option("--standby-replicas", a->standby_replicas,
                      "Warm standbys: each partition is also folded, read-only, by this many other instances (the ones "
                      "after its owner in instance order), so that the one the group gives it to after a failure goes "
                      "on from there. instances - 1: every survivor has one (docs/scaling.md)")
          ->check(CLI::Range(0, 100)),
      "STATEFOLD_STANDBY_REPLICAS");
  env(cmd->add_option("--partition-snapshots", a->partition_snapshots,
                      "on: this instance publishes snapshots of the partitions it folds on --snapshots-topic, and a "
                      "partition it gains with no state here is restored from the newest one, so that only the log "
                      "after it is folded (a damaged or incompatible snapshot is folded from the log instead)")
          ->check(CLI::IsMember({"on", "off"})),
      "STATEFOLD_PARTITION_SNAPSHOTS");
  env(cmd->add_option("--partition-snapshot-interval-s", a->partition_snapshot_interval_s,
                      "How often each partition folded here is published, if it changed (0: only with `statefold "
                      "snapshot publish`)"),
      "STATEFOLD_PARTITION_SNAPSHOT_INTERVAL_S");
  env(cmd->add_option("--snapshots-topic", a->snapshots_topic,
                      "Compacted topic of partition snapshots, with as many partitions as the event topic (default: "
                      "TOPIC.snapshots)"),
      "STATEFOLD_SNAPSHOTS_TOPIC");
  env(cmd->add_option("--members-topic", a->members_topic,
                      "Compacted topic on which the instances of the group announce their partitions and addresses"),
      "STATEFOLD_MEMBERS_TOPIC");
  cmd->add_flag("--embedded-kafka", a->embedded,
                "Run librdkafka's in-process mock cluster instead of a broker: a try-out without Java. "
                "It KEEPS NOTHING after exit (the store does, but its offsets then point into a log that is gone)");
  return [a, config, cmd]() {
    if (!config->empty()) {
      if (auto applied = apply_config_file(*cmd, *config); !applied) {
        std::cerr << "statefold serve: " << applied.error().message << "\n";
        return kUsage;
      }
      // Kafka's security settings, for the engine's consumer, the appender, the dead-letter producer and admin.
      if (!kafka_config_ok(*config, "serve")) return kUsage;
    }
    base::set_log_format(a->log_format == "json" ? base::LogFormat::json : base::LogFormat::text);
    raise_file_limit();
    base::set_log_level(a->log_level == "debug"  ? base::LogLevel::debug
                        : a->log_level == "warn" ? base::LogLevel::warn
                        : a->log_level == "error" ? base::LogLevel::error
                                                  : base::LogLevel::info);
    a->engine.wal = a->wal == "on";
    a->engine.static_membership = a->static_membership == "on";
    a->engine.drop_lost_after = std::chrono::seconds(a->drop_lost_after_s);
    if (a->engine.sync_writes && !a->engine.wal) {
      std::cerr << "statefold serve: --sync needs the WAL: with --wal off there is no log to fsync, a batch is durable "
                   "only once its memtable is flushed. Use --sync (power-loss safe) or --wal off (rereads Kafka "
                   "after a crash), not both\n";
      return kUsage;
    }
    if (a->engine.data_dir.empty()) {
      std::cerr << "statefold serve: --data-dir is required (or data-dir in --config, or STATEFOLD_DATA_DIR)\n";
      return kUsage;
    }
    std::optional<std::pair<std::string, std::uint16_t>> http_address;
    if (a->http_address != "off") {
      http_address = parse_host_port(a->http_address);
      if (!http_address) {
        std::cerr << "statefold serve: --http-address: expected HOST:PORT or off, got \"" << a->http_address << "\"\n";
        return kUsage;
      }
    }
    if (a->tls_cert.empty() != a->tls_key.empty()) {
      std::cerr << "statefold serve: --tls-cert and --tls-key go together\n";
      return kUsage;
    }
    if (!a->tls_client_ca.empty() && a->tls_cert.empty()) {
      std::cerr << "statefold serve: --tls-client-ca needs --tls-cert and --tls-key\n";
      return kUsage;
    }
    if (!a->tls_cert.empty()) {
      if (auto usable = http::check_tls({a->tls_cert, a->tls_key, a->tls_client_ca}); !usable) {
        std::cerr << "statefold serve: " << usable.error().message << "\n";
        return kUsage;
      }
    }
    // Forwarding to instances that serve HTTPS: their CA, and this instance's certificate for mutual TLS.
    const http::ClientTlsOptions forward_tls_options{a->peer_ca.empty() ? a->tls_client_ca : a->peer_ca,
                                                      a->tls_cert, a->tls_key};
    std::shared_ptr<const http::ClientTls> forward_tls;
    if (!a->tls_cert.empty() || !a->peer_ca.empty()) {
      auto loaded = http::ClientTls::load(forward_tls_options);
      if (!loaded) {
        std::cerr << "statefold serve: forwarding over TLS: " << loaded.error().message << "\n";
        return kUsage;
      }
      forward_tls = std::move(*loaded);
    }
    // The gateway's endpoints and routes: the config file's [upstream] table, else the offline echo endpoint.
    // API keys: its [auth] table.
    upstream::RoutingConfig routing = gateway::offline_routing();
    auth::Config auth_config;
    if (!config->empty()) {
      std::ifstream in(*config);
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      auto keys = auth::parse_config(text, *config);
      if (!keys) {
        std::cerr << "statefold serve: " << keys.error().message << "\n";
        return kUsage;
      }
      auth_config = std::move(*keys);
      if (auth_config.jwt) {
        std::ifstream key_file(auth_config.jwt->public_key_file);
        std::string pem((std::istreambuf_iterator<char>(key_file)), std::istreambuf_iterator<char>());
        if (!key_file) {
          std::cerr << "statefold serve: auth.jwt.public_key_file " << auth_config.jwt->public_key_file
                    << ": cannot read it\n";
          return kUsage;
        }
        if (auto loaded = auth::load_jwt_key(*auth_config.jwt, std::move(pem)); !loaded) {
          std::cerr << "statefold serve: " << loaded.error().message << "\n";
          return kUsage;
        }
      }
      auto parsed = upstream::parse_routing_toml(text, *config);
      if (!parsed) {
        std::cerr << "statefold serve: " << parsed.error().message << "\n";
        return kUsage;
      }
      if (!parsed->endpoints.empty()) routing = std::move(*parsed);
    }
    auto router = upstream::Router::make(std::move(routing));
    if (!router) {
      std::cerr << "statefold serve: " << router.error().message << "\n";
      return kUsage;
    }
    // Secure by default: beyond loopback, no keys means anyone who reaches the port may read every session and
    // spend on every endpoint, so that takes an explicit flag.
    if (http_address && auth_config.keys.empty() && !auth_config.jwt) {
      if (!is_loopback(http_address->first) && !a->insecure_no_auth) {
        std::cerr << "statefold serve: refusing to listen on " << a->http_address
                  << " without authentication: add [[auth.keys]] to --config (statefold auth new-key makes one), "
                     "listen on 127.0.0.1, or pass --insecure-no-auth\n";
        return kUsage;
      }
      if (!is_loopback(http_address->first)) {
        base::log_warn("INSECURE: no API keys; anyone who reaches the port may read, write and spend",
                       {{"address", a->http_address}});
      }
    }
    // One budget: with the HTTP API on, an eighth goes to the gateway's cache of session contexts.
    const std::uint64_t budget_bytes = a->memory_mb << 20;
    const std::uint64_t context_cache_bytes = a->http_address == "off" ? 0 : budget_bytes / 8;
    a->engine.memory_budget_bytes = budget_bytes - context_cache_bytes;
    a->engine.disk_reserve_bytes = a->disk_reserve_mb << 20;
    std::unique_ptr<log::EmbeddedCluster> cluster;
    const std::pair<std::string, int> topics[] = {{a->engine.topic, a->partitions}, {a->engine.dead_letter_topic, 1}};
    if (a->embedded) {
      auto started = log::EmbeddedCluster::start();
      if (!started) {
        std::cerr << "statefold serve: " << started.error().message << "\n";
        return kFailure;
      }
      cluster = std::move(*started);
      a->engine.brokers = cluster->bootstrap_servers();
      for (const auto& [topic, n] : topics) {
        if (auto r = cluster->create_topic(topic, n); !r) {
          std::cerr << "statefold serve: " << r.error().message << "\n";
          return kFailure;
        }
      }
      base::log_warn("EMBEDDED KAFKA: librdkafka's in-process mock cluster; every event is lost when this process exits",
                     {{"brokers", a->engine.brokers}});
    } else {
      for (const auto& [topic, n] : topics) {
        if (auto r = log::ensure_topic(a->engine.brokers, topic, n); !r) {
          std::cerr << "statefold serve: " << r.error().message << "\n";
          return kFailure;
        }
      }
    }
    auto partitions = log::partition_count(a->engine.brokers, a->engine.topic);
    if (!partitions) {
      std::cerr << "statefold serve: " << partitions.error().message << "\n";
      return kFailure;
    }
    a->engine.partitions = *partitions;
    // Partition snapshots: published by the owner, restored by an instance that gains a partition it has no state
    // for. Not for the embedded try-out, a single process by definition.
    std::unique_ptr<snapshot::PartitionSnapshots> partition_snapshots;
    if (a->partition_snapshots == "on" && !a->embedded) {
      snapshot::PartitionSnapshotOptions options;
      options.brokers = a->engine.brokers;
      options.topic = a->snapshots_topic;
      options.events_topic = a->engine.topic;
      options.kafka_properties = a->engine.kafka_properties;
      options.instance = a->engine.data_dir;
      partition_snapshots = std::make_unique<snapshot::PartitionSnapshots>(options);
      if (auto r = partition_snapshots->ensure_topic(*partitions); !r) {
        std::cerr << "statefold serve: " << r.error().message << "\n";
        return kFailure;
      }
      a->engine.restore_partition = [raw = partition_snapshots.get()](std::int32_t p, store::Store& store) {
        return restore_partition(*raw, p, store);
      };
    }
    auto engine = runtime::Engine::open(a->engine);
    if (!engine) {
      std::cerr << "statefold serve: " << engine.error().message << "\n";
      return kFailure;
    }
    // Several instances on the topic: announce what this one folds, and forward what another one folds to it (over
    // TLS to an instance that serves HTTPS). Not the embedded try-out, a single process by definition.
    std::shared_ptr<cluster::Cluster> members;
    if (http_address && !a->embedded) {
      cluster::Options cluster_options;
      cluster_options.brokers = a->engine.brokers;
      cluster_options.topic = a->members_topic;
      cluster_options.group = a->engine.group;
      cluster_options.events_topic = a->engine.topic;
      cluster_options.instance = (*engine)->instance_id();
      // Port 0 (any free one): the address is known once the server listens, before any announcement.
      if (!a->advertise_url.empty()) {
        cluster_options.url = a->advertise_url;
      } else if (http_address->second != 0) {
        cluster_options.url = default_advertise_url(*http_address, !a->tls_cert.empty());
      }
      cluster_options.kafka_properties = a->engine.kafka_properties;
      cluster_options.forward_tls = forward_tls;
      auto started = cluster::Cluster::start(cluster_options);
      if (!started) {
        std::cerr << "statefold serve: " << started.error().message << "\n";
        return kFailure;
      }
      members = std::move(*started);
      (*engine)->on_assignment([raw = members.get()](const std::vector<std::int32_t>& owned) { raw->announce(owned); });
    }
    metrics::Metrics metrics;
    metrics.attach(engine->get());
    (*engine)->set_probe(&metrics);

    std::unique_ptr<append::KafkaAppender> appender;
    std::unique_ptr<cluster::GroupUsage> group_usage;
    std::unique_ptr<cluster::GroupSessions> group_sessions;
    std::unique_ptr<cluster::GroupUsageRows> group_usage_rows;
    std::unique_ptr<EngineState> engine_state;
    std::unique_ptr<api::Api> api;
    std::unique_ptr<gateway::Gateway> gate;
    std::unique_ptr<http::Server> server;
    if (http_address) {
      append::KafkaAppender::Config appender_options;
      appender_options.brokers = a->engine.brokers;
      appender_options.topic = a->engine.topic;
      appender_options.fold_timeout = std::chrono::milliseconds(a->append_timeout_ms);
      appender_options.writes_refused = [raw = engine->get()] { return raw->disk_full(); };
      // Stable per store: a restarted instance fences the transactions its previous run left open.
      const auto dir_hash = base::sha256(std::filesystem::absolute(a->engine.data_dir).string());
      appender_options.transactional_id =
          "statefold-" + a->engine.group + "-" + base::to_hex(std::span<const std::uint8_t>(dir_hash.data(), 8));
      auto created = append::KafkaAppender::create(appender_options);
      if (!created) {
        std::cerr << "statefold serve: " << created.error().message << "\n";
        return kFailure;
      }
      appender = std::move(*created);
      (*engine)->on_committed([raw = appender.get()](const auto& records) { raw->folded(records); });
      auto id_secret = load_id_secret(a->id_secret_file, a->engine.data_dir);
      if (!id_secret) {
        std::cerr << "statefold serve: " << id_secret.error().message << "\n";
        return kFailure;
      }
      api::ApiOptions api_options;
      auth::TokensUsed turn_tokens_used;  // empty: this store's receipts (a single instance)
      api_options.ready_max_lag = a->ready_max_lag;
      api_options.scrape_metrics = [&metrics] { return metrics.scrape(); };
      if (members) {
        // In a group a key's receipts are folded where each session's partition is: its budget counts them all.
        group_usage = std::make_unique<cluster::GroupUsage>(
            *members, cluster::GroupUsageOptions{.secret = *id_secret, .local = local_usage(**engine)});
        auto tokens_used = [raw = group_usage.get()](std::chrono::milliseconds wait) {
          return [raw, wait](const auth::Principal& caller, const auth::BudgetWindow& window) {
            return raw->tokens({caller.tenant.empty() ? std::nullopt : std::optional<std::string>(caller.tenant),
                                window.from_day, window.through_day, caller.key_name},
                               wait);
          };
        };
        // A turn's check runs on a gateway worker and may wait for the members; /v1/usage answers on an I/O thread,
        // which waits a moment at most (a later answer counts from the next call).
        turn_tokens_used = tokens_used(std::chrono::seconds(2));
        api_options.tokens_used = tokens_used(std::chrono::milliseconds(250));
        // And a listing holds every instance's sessions: each owner lists its partitions.
        group_sessions = std::make_unique<cluster::GroupSessions>(
            *members, cluster::GroupSessionsOptions{.secret = *id_secret,
                                                    .partitions = (*engine)->options().partitions,
                                                    .local = local_sessions(**engine)});
        api_options.list_sessions = [raw = group_sessions.get()](std::string prefix, std::string cursor,
                                                                 std::uint64_t limit, auto done) {
          raw->list({std::move(prefix), std::move(cursor), limit},
                    [done = std::move(done)](base::Result<cluster::SessionsPage> page) {
                      if (!page) return done(page.error());
                      done(cluster::sessions_json(*page));
                    });
        };
        // And a usage report holds every instance's rows: each owner reads its partitions.
        group_usage_rows = std::make_unique<cluster::GroupUsageRows>(
            *members, cluster::GroupUsageRowsOptions{.secret = *id_secret,
                                                     .partitions = (*engine)->options().partitions,
                                                     .local = local_usage_rows(**engine)});
        api_options.usage_report = [raw = group_usage_rows.get()](std::optional<std::string> tenant, std::string from,
                                                                  std::string through, auto done) {
          cluster::UsageRowsQuery query{std::move(tenant), std::move(from), std::move(through)};
          raw->report(query, [from = query.from_day, through = query.through_day,
                              done = std::move(done)](base::Result<cluster::UsageRows> report) {
                        if (!report) return done(report.error());
                        done(view::usage_json(stored_usage_rows(std::move(report->rows)), from, through));
                      });
        };
      }
      api = std::make_unique<api::Api>(api_options, **engine, *appender);
      // Named fields: the ones left out keep their defaults (a positional {} would zero the reply's patience).
      gateway::Options gateway_options{
          .router = std::move(*router),
          .workers = a->gateway_workers,
          .on_turn = [&metrics](std::string_view endpoint, int status, std::chrono::nanoseconds upstream,
                                std::chrono::nanoseconds overhead) {
            metrics.observe_gateway_turn(endpoint, status, upstream, overhead);
          },
          .context_cache_bytes = context_cache_bytes,
          .id_secret = std::move(*id_secret),
          .tokens_used = std::move(turn_tokens_used),
      };
      engine_state = std::make_unique<EngineState>(**engine);
      gate = std::make_unique<gateway::Gateway>(std::move(gateway_options), *engine_state, *appender);
      http::ServerOptions server_options;
      server_options.address = http_address->first;
      server_options.port = http_address->second;
      server_options.threads = a->http_threads;
      server_options.max_body_bytes = a->max_body_bytes;
      server_options.max_connections = a->max_connections;
      if (!a->tls_cert.empty()) server_options.tls = http::TlsOptions{a->tls_cert, a->tls_key, a->tls_client_ca};
      if (!auth_config.keys.empty() || auth_config.jwt) {
        base::log_info("API keys required", {{"keys", std::to_string(auth_config.keys.size())},
                                             {"jwt_issuer", auth_config.jwt ? auth_config.jwt->issuer : "none"},
                                             {"metrics_open", auth_config.metrics_open ? "true" : "false"}});
      }
      auto keys = std::make_shared<auth::Gate>(std::move(auth_config));
      auto started = http::Server::start(
          server_options,
          [raw = api.get(), gw = gate.get(), keys, members, usage = group_usage.get(),
           sessions = group_sessions.get(), usage_rows = group_usage_rows.get()](http::Request request,
                                                                                  http::Respond respond) {
            // Another member asking for a key's usage, a page of sessions or usage rows: signed with the group's
            // secret, not a client's key.
            if (usage && request.path == cluster::kPeerUsagePath) return respond(usage->answer(request));
            if (sessions && request.path == cluster::kPeerSessionsPath) return respond(sessions->answer(request));
            if (usage_rows && request.path == cluster::kPeerUsageRowsPath) return respond(usage_rows->answer(request));
            if (members) {
              // A refusal naming the session's partition (folded elsewhere, or not here yet) goes to the cluster,
              // which forwards the request to the owner: it needs the request as it came.
              respond = [members, copy = std::make_shared<http::Request>(request),
                         respond = std::move(respond)](http::Response response) {
                if (response.status != 421 && response.status != 503) return respond(std::move(response));
                members->route(std::move(*copy), std::move(response), respond);
              };
            }
            auto admitted = keys->admit(request.method, request.path, request.header("authorization"),
                                        std::chrono::steady_clock::now());
            if (const auto* refused = std::get_if<auth::Refusal>(&admitted)) return respond(refusal_response(*refused));
            auto& caller = std::get<auth::Principal>(admitted);
            if (keys->enabled() && auth::required_role(request.method, request.path, true) == auth::Role::admin) {
              base::log_info("admin request", {{"key", caller.key_name},
                                               {"tenant", caller.tenant},
                                               {"method", request.method},
                                               {"path", request.path}});
            }
            if (members && request.path == "/v1/cluster") {
              return respond(request.method == "GET" ? http::json_response(200, members->members_json(), "/v1/cluster")
                                                     : api::error_response(405, "use GET", "/v1/cluster"));
            }
            if (gateway::Gateway::handles(request)) {
              return gw->handle(std::move(request), std::move(caller), std::move(respond));
            }
            raw->handle(std::move(request), caller, std::move(respond));
          },
          [&metrics](const http::Request& request, const http::Response& response, std::chrono::nanoseconds latency) {
            metrics.observe_http(request, response, latency);
          });
      if (!started) {
        std::cerr << "statefold serve: HTTP API on " << a->http_address << ": " << started.error().message << "\n";
        return kFailure;
      }
      server = std::move(*started);
      if (members && a->advertise_url.empty() && http_address->second == 0) {
        members->set_url(default_advertise_url({http_address->first, server->port()}, !a->tls_cert.empty()));
      }
      // Listening: announced now (folding nothing yet), so that the first announcement of partitions, made while
      // the group waits, does not also pay for the producer's start.
      if (members) members->announce({});
      base::log_info("HTTP API listening",
                     {{"address", http_address->first + ":" + std::to_string(server->port())},
                      {"tls", a->tls_cert.empty() ? "off" : a->tls_client_ca.empty() ? "on" : "mutual"}});
    }

    // Periodic snapshots, beside the engine: a RocksDB checkpoint is consistent while batches commit.
    std::mutex snapshot_mutex;
    std::condition_variable snapshot_wake;
    bool snapshots_stop = false;
    std::thread snapshotter;
    if (a->snapshot_interval_s > 0) {
      snapshotter = std::thread([&] {
        std::unique_lock lock(snapshot_mutex);
        while (!snapshot_wake.wait_for(lock, std::chrono::seconds(a->snapshot_interval_s), [&] { return snapshots_stop; })) {
          auto taken = snapshot::create((*engine)->store(), a->engine.data_dir);
          if (!taken) {
            base::log_error("snapshot failed", {{"error", taken.error().message}});
            continue;
          }
          const auto pruned = snapshot::prune(a->engine.data_dir, a->snapshot_retention);
          base::log_info("snapshot taken", {{"id", taken->id}, {"events_applied", std::to_string(taken->events_applied)},
                                            {"pruned", std::to_string(pruned)}});
        }
      });
    }

    // Partition snapshots, beside the engine: each partition folded here, if it changed since it was published last.
    std::thread partition_publisher;
    if (partition_snapshots && a->partition_snapshot_interval_s > 0) {
      partition_publisher = std::thread([&] {
        std::map<std::int32_t, std::int64_t> published;
        std::unique_lock lock(snapshot_mutex);
        while (!snapshot_wake.wait_for(lock, std::chrono::seconds(a->partition_snapshot_interval_s),
                                       [&] { return snapshots_stop; })) {
          lock.unlock();
          publish_partitions(*partition_snapshots, **engine, published);
          lock.lock();
        }
      });
    }

    // Warm standbys, planned from the membership topic every second: the engine follows what the plan gives it.
    std::thread standby_planner;
    if (members && a->standby_replicas > 0) {
      standby_planner = std::thread([&] {
        std::unique_lock lock(snapshot_mutex);
        while (!snapshot_wake.wait_for(lock, std::chrono::seconds(1), [&] { return snapshots_stop; })) {
          (*engine)->set_standbys(
              cluster::standby_partitions(members->members(), (*engine)->instance_id(), a->standby_replicas));
        }
      });
    }

    // SIGHUP: the TLS certificate and key are read again (a renewed certificate without a restart).
    std::thread tls_reloader;
    std::atomic<bool> reloader_stop{false};
    if (server && !a->tls_cert.empty()) {
      std::signal(SIGHUP, on_sighup);
      tls_reloader = std::thread([&] {
        while (!reloader_stop.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          if (!g_reload_tls.exchange(false)) continue;
          if (auto reloaded = server->reload_tls(); !reloaded) {
            base::log_error("TLS reload failed; the previous certificate stays in use",
                            {{"error", reloaded.error().message}});
            continue;
          }
          // The same certificate is shown to the instances requests are forwarded to, and their CA may be renewed.
          auto client = http::ClientTls::load(forward_tls_options);
          if (!client) {
            base::log_error("TLS reload for forwarding failed; forwards keep the previous certificate and CA",
                            {{"error", client.error().message}});
          } else if (members) {
            members->set_forward_tls(std::move(*client));
          }
          base::log_info("TLS certificate reloaded", {{"cert", a->tls_cert}});
        }
      });
    }

    g_engine = engine->get();
    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    auto result = (*engine)->run();
    g_engine = nullptr;
    if (members) members->leave();  // the engine left the group: others stop forwarding here
    {
      std::lock_guard lock(snapshot_mutex);
      snapshots_stop = true;
    }
    snapshot_wake.notify_all();
    if (snapshotter.joinable()) snapshotter.join();
    if (partition_publisher.joinable()) partition_publisher.join();
    if (standby_planner.joinable()) standby_planner.join();
    reloader_stop.store(true);
    if (tls_reloader.joinable()) tls_reloader.join();
    // The engine has committed its last batch: appends still waiting for folding cannot be answered 200 any more.
    if (appender) appender->shutdown("serve is shutting down; the events may be on the log but were not folded here");
    if (gate) gate->stop();  // turns in hand finish (their appends were just answered)
    if (server) server->stop();
    if (!result) {
      base::log_error("engine failed", {{"error", result.error().message}});
      return kFailure;
    }
    return kOk;
  };
}

}  // namespace statefold::cli
