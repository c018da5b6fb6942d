// The /metrics rendering: pushed batch and HTTP figures, pulled engine and store figures fed through Sources, and
// the whole output checked by promtool (format and naming lint).
#include "engine/metrics/metrics.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "support/temp_dir.h"

namespace statefold::metrics {
namespace {

using namespace std::chrono_literals;

// Sample lines of the text format: series (name and labels, as printed) -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    EXPECT_NE(space, std::string::npos) << line;
    if (space == std::string::npos) continue;
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

bool has_family(const std::string& text, const std::string& name) {
  return text.find("# TYPE " + name + " ") != std::string::npos;
}

http::Request request(std::string method, std::string path) {
  http::Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

http::Response response(int status, std::string route) {
  http::Response r;
  r.status = status;
  r.route = std::move(route);
  return r;
}

struct FakeEngine {
  runtime::EngineStats stats;
  std::vector<std::int32_t> assignment = {0, 2};
  std::map<std::int32_t, std::int64_t> lag = {{0, 5}, {2, -1}};
  std::map<std::int32_t, std::int64_t> offsets = {{0, 120}, {1, 7}, {2, 0}};
  store::Stats store_stats{.memory_bytes = 1 << 20, .live_data_bytes = 4096, .pending_compaction_bytes = 512,
                           .running_compactions = 1};
  state::StoreSummaryT summary;

  Sources sources() {
    Sources s;
    s.stats = &stats;
    s.assignment = [this] { return assignment; };
    s.lag = [this] { return lag; };
    s.stored_offsets = [this] { return offsets; };
    s.store_stats = [this] { return store_stats; };
    s.summary = [this] { return summary; };
    return s;
  }
};

struct PromtoolResult {
  int exit_code = -1;
  std::string output;
};

// promtool check metrics reads the exposition on stdin; lint problems go to its output and make it exit 1.
PromtoolResult promtool_check(const std::string& text) {
  constexpr const char* kPromtool = "/usr/bin/promtool";
  if (access(kPromtool, X_OK) != 0) {
    ADD_FAILURE() << kPromtool << " is missing: install the Debian package `prometheus` (tools/setup.sh)";
    return {};
  }
  testing::TempDir dir;
  const std::string input = dir.path() + "/metrics.txt";
  std::ofstream(input) << text;
  const std::string command = std::string(kPromtool) + " check metrics < '" + input + "' 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return {};
  }
  PromtoolResult result;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

TEST(Metrics, RendersBatchTimingsWithoutAnEngine) {
  Metrics metrics;
  metrics.batch_committed(100, 2ms, 300us);
  metrics.batch_committed(3, 150us, 20s);  // beyond the last bucket
  const std::string text = metrics.scrape();
  auto s = samples(text);

  EXPECT_EQ(s["statefold_fold_batch_size_records_count"], 2);
  EXPECT_EQ(s["statefold_fold_batch_size_records_sum"], 103);
  EXPECT_EQ(s["statefold_fold_batch_size_records_bucket{le=\"1\"}"], 0);
  EXPECT_EQ(s["statefold_fold_batch_size_records_bucket{le=\"10\"}"], 1);
  EXPECT_EQ(s["statefold_fold_batch_size_records_bucket{le=\"100\"}"], 2);
  EXPECT_EQ(s["statefold_fold_batch_size_records_bucket{le=\"+Inf\"}"], 2);

  EXPECT_EQ(s["statefold_fold_duration_seconds_count"], 2);
  EXPECT_DOUBLE_EQ(s["statefold_fold_duration_seconds_sum"], 0.00215);
  EXPECT_EQ(s["statefold_fold_duration_seconds_bucket{le=\"0.0001\"}"], 0);
  EXPECT_EQ(s["statefold_fold_duration_seconds_bucket{le=\"0.00025\"}"], 1);
  EXPECT_EQ(s["statefold_fold_duration_seconds_bucket{le=\"0.0025\"}"], 2);
  EXPECT_EQ(s["statefold_commit_duration_seconds_bucket{le=\"0.0005\"}"], 1);
  EXPECT_EQ(s["statefold_commit_duration_seconds_bucket{le=\"10\"}"], 1);
  EXPECT_EQ(s["statefold_commit_duration_seconds_bucket{le=\"+Inf\"}"], 2);
  EXPECT_DOUBLE_EQ(s["statefold_commit_duration_seconds_sum"], 20.0003);

  // Nothing pulled without an engine, but the start time is the process's own.
  EXPECT_FALSE(has_family(text, "statefold_records_total"));
  EXPECT_FALSE(has_family(text, "statefold_partition_lag"));
  EXPECT_FALSE(has_family(text, "statefold_rocksdb_memory_bytes"));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_GT(s["statefold_process_start_time_seconds"], now - 24 * 3600);
  EXPECT_LE(s["statefold_process_start_time_seconds"], now + 1);
  EXPECT_NE(text.find("# HELP statefold_fold_duration_seconds "), std::string::npos);
}

TEST(Metrics, CountsHttpRequestsByRouteMethodAndCodeWithBoundedLabels) {
  Metrics metrics;
  metrics.observe_http(request("GET", "/v1/sessions/a"), response(200, "/v1/sessions/{id}"), 2ms);
  metrics.observe_http(request("GET", "/v1/sessions/b"), response(200, "/v1/sessions/{id}"), 40ms);
  metrics.observe_http(request("GET", "/v1/sessions/c"), response(404, "/v1/sessions/{id}"), 1ms);
  metrics.observe_http(request("POST", "/no/such/thing"), response(404, ""), 50us);
  metrics.observe_http(request("BREW", "/coffee"), response(418, ""), 50us);
  auto s = samples(metrics.scrape());

  EXPECT_EQ(s["statefold_http_requests_total{code=\"200\",method=\"GET\",route=\"/v1/sessions/{id}\"}"], 2);
  EXPECT_EQ(s["statefold_http_requests_total{code=\"404\",method=\"GET\",route=\"/v1/sessions/{id}\"}"], 1);
  EXPECT_EQ(s["statefold_http_requests_total{code=\"404\",method=\"POST\",route=\"unmatched\"}"], 1);
  EXPECT_EQ(s["statefold_http_requests_total{code=\"418\",method=\"other\",route=\"unmatched\"}"], 1);
  EXPECT_EQ(s["statefold_http_request_duration_seconds_count{route=\"/v1/sessions/{id}\"}"], 3);
  EXPECT_EQ(s["statefold_http_request_duration_seconds_bucket{route=\"/v1/sessions/{id}\",le=\"0.0025\"}"], 2);
  EXPECT_DOUBLE_EQ(s["statefold_http_request_duration_seconds_sum{route=\"/v1/sessions/{id}\"}"], 0.043);
  EXPECT_EQ(s["statefold_http_request_duration_seconds_count{route=\"unmatched\"}"], 2);
  for (const auto& [series, value] : s) {
    EXPECT_EQ(series.find("/no/such/thing"), std::string::npos) << "a raw path became a label: " << series;
    EXPECT_EQ(series.find("BREW"), std::string::npos) << "a raw method became a label: " << series;
  }
}

TEST(Metrics, CountsGatewayTurnsByEndpointAndCodeWithUpstreamAndOverheadTimes) {
  Metrics metrics;
  metrics.observe_gateway_turn("openai", 200, 800ms, 3ms);
  metrics.observe_gateway_turn("openai", 200, 1200ms, 1ms);
  metrics.observe_gateway_turn("openai", 429, 2s, 500us);
  metrics.observe_gateway_turn("claude", 200, 40s, 2ms);
  const std::string text = metrics.scrape();
  auto s = samples(text);
  EXPECT_EQ(s["statefold_gateway_turns_total{code=\"200\",endpoint=\"openai\"}"], 2);
  EXPECT_EQ(s["statefold_gateway_turns_total{code=\"429\",endpoint=\"openai\"}"], 1);
  EXPECT_EQ(s["statefold_gateway_turns_total{code=\"200\",endpoint=\"claude\"}"], 1);
  EXPECT_EQ(s["statefold_gateway_upstream_duration_seconds_count{endpoint=\"openai\"}"], 3);
  EXPECT_DOUBLE_EQ(s["statefold_gateway_upstream_duration_seconds_sum{endpoint=\"openai\"}"], 4.0);
  EXPECT_EQ(s["statefold_gateway_upstream_duration_seconds_bucket{endpoint=\"claude\",le=\"30\"}"], 0);
  EXPECT_EQ(s["statefold_gateway_upstream_duration_seconds_bucket{endpoint=\"claude\",le=\"60\"}"], 1);
  EXPECT_EQ(s["statefold_gateway_overhead_seconds_count"], 4);
  EXPECT_EQ(s["statefold_gateway_overhead_seconds_bucket{le=\"0.001\"}"], 2);
  EXPECT_EQ(s["statefold_gateway_overhead_seconds_bucket{le=\"0.0025\"}"], 3);
  const PromtoolResult result = promtool_check(text);
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input ---\n" << text;
}

TEST(Metrics, PullsEngineAndStoreFiguresAtScrapeTime) {
  FakeEngine engine;
  engine.stats.records = 10;
  engine.stats.accepted = 6;
  engine.stats.duplicates = 2;
  engine.stats.rejected = 1;
  engine.stats.dead_letters = 1;
  engine.stats.batches = 3;
  engine.summary.sessions = 4;
  engine.summary.events_applied = 60;
  engine.summary.duplicates = 20;
  engine.summary.rejections = 10;
  engine.summary.unknown_events = 2;
  engine.summary.dlq_records = 9;
  Metrics metrics;
  metrics.attach_sources(engine.sources());
  const std::string text = metrics.scrape();
  auto s = samples(text);

  EXPECT_NE(text.find("# TYPE statefold_records_total counter"), std::string::npos);
  EXPECT_NE(text.find("# TYPE statefold_events_folded_total counter"), std::string::npos);
  EXPECT_EQ(s["statefold_records_total"], 10);
  EXPECT_EQ(s["statefold_events_folded_total{outcome=\"accepted\"}"], 6);
  EXPECT_EQ(s["statefold_events_folded_total{outcome=\"duplicate\"}"], 2);
  EXPECT_EQ(s["statefold_events_folded_total{outcome=\"rejected\"}"], 1);
  EXPECT_EQ(s["statefold_dead_letter_records_total"], 1);
  EXPECT_EQ(s["statefold_fold_batches_total"], 3);
  EXPECT_EQ(s["statefold_assigned_partitions"], 2);
  EXPECT_EQ(s["statefold_partition_lag{partition=\"0\"}"], 5);
  EXPECT_EQ(s.count("statefold_partition_lag{partition=\"2\"}"), 0u) << "an unknown lag is left out, not -1";
  EXPECT_EQ(s["statefold_partition_stored_offset{partition=\"0\"}"], 120);
  EXPECT_EQ(s["statefold_partition_stored_offset{partition=\"1\"}"], 7);
  EXPECT_EQ(s["statefold_partition_stored_offset{partition=\"2\"}"], 0);
  EXPECT_EQ(s["statefold_rocksdb_memory_bytes"], 1 << 20);
  EXPECT_EQ(s["statefold_rocksdb_live_data_bytes"], 4096);
  EXPECT_EQ(s["statefold_rocksdb_pending_compaction_bytes"], 512);
  EXPECT_EQ(s["statefold_rocksdb_running_compactions"], 1);
  EXPECT_EQ(s["statefold_store_sessions"], 4);
  EXPECT_EQ(s["statefold_store_events_applied"], 60);
  EXPECT_EQ(s["statefold_store_duplicate_events"], 20);
  EXPECT_EQ(s["statefold_store_rejected_events"], 10);
  EXPECT_EQ(s["statefold_store_unknown_events"], 2);
  EXPECT_EQ(s["statefold_store_dead_letter_records"], 9);

  // The next scrape reads the figures again: counters follow the engine, revoked partitions disappear.
  engine.stats.accepted += 5;
  engine.stats.records += 5;
  engine.assignment = {2};
  engine.lag = {{2, 40}};
  engine.summary.sessions = 5;
  s = samples(metrics.scrape());
  EXPECT_EQ(s["statefold_records_total"], 15);
  EXPECT_EQ(s["statefold_events_folded_total{outcome=\"accepted\"}"], 11);
  EXPECT_EQ(s["statefold_assigned_partitions"], 1);
  EXPECT_EQ(s.count("statefold_partition_lag{partition=\"0\"}"), 0u);
  EXPECT_EQ(s["statefold_partition_lag{partition=\"2\"}"], 40);
  EXPECT_EQ(s["statefold_store_sessions"], 5);

  metrics.attach(nullptr);
  const std::string detached = metrics.scrape();
  EXPECT_FALSE(has_family(detached, "statefold_records_total"));
  EXPECT_FALSE(has_family(detached, "statefold_store_sessions"));
  EXPECT_TRUE(has_family(detached, "statefold_process_start_time_seconds"));
}

TEST(Metrics, OutputPassesPromtoolCheckMetrics) {
  FakeEngine engine;
  engine.stats.records = 3;
  engine.stats.accepted = 3;
  engine.summary.sessions = 1;
  Metrics metrics;
  metrics.attach_sources(engine.sources());
  metrics.batch_committed(3, 1ms, 2ms);
  metrics.observe_http(request("GET", "/metrics"), response(200, "/metrics"), 1ms);
  metrics.observe_http(request("GET", "/nope"), response(404, ""), 1ms);
  const std::string text = metrics.scrape();
  const PromtoolResult result = promtool_check(text);
  EXPECT_EQ(result.exit_code, 0) << result.output << "\n--- input ---\n" << text;
  EXPECT_EQ(result.output, "") << "promtool complained:\n" << result.output;
  // Every family states its help and type once.
  EXPECT_EQ(text.find("# HELP statefold_store_sessions "), text.rfind("# HELP statefold_store_sessions "));
}

TEST(Metrics, ScrapesConcurrentlyWithBatchesRequestsAndReattachment) {
  FakeEngine engine;
  Metrics metrics;
  metrics.attach_sources(engine.sources());
  std::atomic<bool> stop{false};
  std::thread engine_thread([&] {
    for (int i = 0; i < 2000; ++i) {
      engine.stats.records.fetch_add(1, std::memory_order_relaxed);
      metrics.batch_committed(1, 1us, 1us);
    }
  });
  std::thread http_thread([&] {
    for (int i = 0; i < 2000; ++i) {
      metrics.observe_http(request("GET", "/x"), response(200, i % 2 ? "/a" : ""), 1us);
    }
  });
  std::thread attach_thread([&] {
    for (int i = 0; !stop.load(); ++i) metrics.attach_sources(i % 2 ? engine.sources() : Sources{});
  });
  std::string last;
  for (int i = 0; i < 50; ++i) last = metrics.scrape();
  engine_thread.join();
  http_thread.join();
  stop = true;
  attach_thread.join();
  metrics.attach_sources(engine.sources());
  auto s = samples(metrics.scrape());
  EXPECT_EQ(s["statefold_records_total"], 2000);
  EXPECT_EQ(s["statefold_fold_batch_size_records_count"], 2000);
  EXPECT_EQ(s["statefold_http_requests_total{code=\"200\",method=\"GET\",route=\"/a\"}"] +
                s["statefold_http_requests_total{code=\"200\",method=\"GET\",route=\"unmatched\"}"],
            2000);
}

}  // namespace
}  // namespace statefold::metrics
