// Pushed figures live in a prometheus-cpp registry. Pulled figures are read at scrape time and rendered as
// constant metric families: the engine's counters are monotonic already, so they are emitted with their value as
// counters, with no last-seen bookkeeping that could drift or double count across re-attachment.
#include "engine/metrics/metrics.h"

#include <prometheus/client_metric.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <tuple>
#include <utility>

namespace statefold::metrics {

namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// 100 µs to 10 s: a fold or commit of one batch.
const prometheus::Histogram::BucketBoundaries kLatencyBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
// Requests reach further: a gateway call waits for the upstream model.
const prometheus::Histogram::BucketBoundaries kHttpBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
// Records per batch; EngineOptions::max_batch defaults to 5000.
const prometheus::Histogram::BucketBoundaries kBatchBuckets = {1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000};

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// Seconds since the epoch at which this process started (/proc, as client_golang's process collector reads it);
// the time of the first call when /proc cannot tell.
double process_start_time() {
  const double fallback = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::ifstream stat_file("/proc/self/stat");
  std::string self((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  const auto comm_end = self.rfind(')');  // the command name may hold spaces and parentheses
  if (comm_end == std::string::npos) return fallback;
  std::istringstream fields(self.substr(comm_end + 1));
  std::string field;
  // Fields after the name start at 3 (state); starttime is field 22, in clock ticks since boot.
  for (int i = 3; i < 22 && fields >> field; ++i) {
  }
  unsigned long long start_ticks = 0;
  if (!(fields >> start_ticks)) return fallback;
  std::ifstream boot_file("/proc/stat");
  std::string line;
  unsigned long long boot_time = 0;
  while (std::getline(boot_file, line)) {
    if (line.rfind("btime ", 0) == 0) {
      boot_time = std::strtoull(line.c_str() + 6, nullptr, 10);
      break;
    }
  }
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (boot_time == 0 || ticks_per_second <= 0) return fallback;
  return static_cast<double>(boot_time) + static_cast<double>(start_ticks) / static_cast<double>(ticks_per_second);
}

std::string_view bounded_method(std::string_view method) {
  static constexpr std::array<std::string_view, 7> kKnown = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"};
  for (std::string_view known : kKnown) {
    if (method == known) return known;
  }
  return "other";
}

MetricFamily family(std::string name, std::string help, MetricType type) {
  return {std::move(name), std::move(help), type, {}};
}

ClientMetric counter(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  return m;
}

ClientMetric gauge(double value, std::vector<ClientMetric::Label> labels = {}) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  return m;
}

MetricFamily single(std::string name, std::string help, MetricType type, double value) {
  MetricFamily f = family(std::move(name), std::move(help), type);
  f.metric.push_back(type == MetricType::Counter ? counter(value) : gauge(value));
  return f;
}

double load(const std::atomic<std::uint64_t>& counter_value) {
  return static_cast<double>(counter_value.load(std::memory_order_relaxed));
}

void pull_engine_counters(const runtime::EngineStats& stats, std::vector<MetricFamily>& out) {
  out.push_back(single("statefold_records_total",
                       "Kafka records the engine consumed and folded or sent to the dead-letter topic.",
                       MetricType::Counter, load(stats.records)));
  MetricFamily outcomes = family("statefold_events_folded_total",
                                 "Events folded, by outcome: accepted, duplicate (event id already accepted) or "
                                 "rejected (expected version mismatch or invalid).",
                                 MetricType::Counter);
  outcomes.metric.push_back(counter(load(stats.accepted), {{"outcome", "accepted"}}));
  outcomes.metric.push_back(counter(load(stats.duplicates), {{"outcome", "duplicate"}}));
  outcomes.metric.push_back(counter(load(stats.rejected), {{"outcome", "rejected"}}));
  out.push_back(std::move(outcomes));
  out.push_back(single("statefold_dead_letter_records_total",
                       "Undecodable or invalid records sent to the dead-letter topic.", MetricType::Counter,
                       load(stats.dead_letters)));
  out.push_back(single("statefold_fold_batches_total", "Batches folded and committed to the store.",
                       MetricType::Counter, load(stats.batches)));
  out.push_back(single("statefold_skipped_refolds_total",
                       "Records below the stored offset, seen again after a rebalance and skipped.",
                       MetricType::Counter, load(stats.skipped_refolds)));
  out.push_back(single("statefold_fetch_pauses_total",
                       "Times fetching paused because the store was throttling writes.", MetricType::Counter,
                       load(stats.pauses)));
  out.push_back(single("statefold_disk_pauses_total",
                       "Times folding paused because the data directory's disk was nearly full.", MetricType::Counter,
                       load(stats.disk_pauses)));
}

void pull_partitions(const std::map<std::int32_t, std::int64_t>& values, bool skip_negative, std::string name,
                     std::string help, std::vector<MetricFamily>& out) {
  MetricFamily f = family(std::move(name), std::move(help), MetricType::Gauge);
  for (const auto& [partition, value] : values) {
    if (skip_negative && value < 0) continue;
    f.metric.push_back(gauge(static_cast<double>(value), {{"partition", std::to_string(partition)}}));
  }
  if (!f.metric.empty()) out.push_back(std::move(f));
}

void pull_store_stats(const store::Stats& s, std::vector<MetricFamily>& out) {
  auto add = [&](const char* name, const char* help, std::uint64_t value) {
    out.push_back(single(name, help, MetricType::Gauge, static_cast<double>(value)));
  };
  add("statefold_rocksdb_memory_bytes", "RocksDB block cache usage, write buffers included.", s.memory_bytes);
  add("statefold_rocksdb_live_data_bytes", "Estimated size of live data in RocksDB.", s.live_data_bytes);
  add("statefold_rocksdb_pending_compaction_bytes", "Estimated bytes RocksDB compaction still has to rewrite.",
      s.pending_compaction_bytes);
  add("statefold_rocksdb_running_compactions", "RocksDB compactions running now.", s.running_compactions);
}

void pull_summary(const state::StoreSummaryT& s, std::vector<MetricFamily>& out) {
  // Gauges: they describe the store, which a snapshot restore or a replay into a fresh store can move backwards.
  auto add = [&](const char* name, const char* help, std::uint64_t value) {
    out.push_back(single(name, help, MetricType::Gauge, static_cast<double>(value)));
  };
  add("statefold_store_sessions", "Sessions in the store.", s.sessions);
  add("statefold_store_events_applied", "Events the store's sessions have accepted, over the store's life.",
      s.events_applied);
  add("statefold_store_duplicate_events", "Duplicate events recorded in the store, over the store's life.",
      s.duplicates);
  add("statefold_store_rejected_events", "Rejected events recorded in the store, over the store's life.",
      s.rejections);
  add("statefold_store_unknown_events", "Events of a type this build does not know, kept and counted in the store.",
      s.unknown_events);
  add("statefold_store_dead_letter_records", "Dead-letter records counted in the store, over the store's life.",
      s.dlq_records);
}

}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;
  prometheus::Histogram& batch_size;
  prometheus::Histogram& fold_duration;
  prometheus::Histogram& commit_duration;
  prometheus::Family<prometheus::Counter>& http_requests;
  prometheus::Family<prometheus::Histogram>& http_duration;
  prometheus::Family<prometheus::Counter>& gateway_turns;
  prometheus::Family<prometheus::Histogram>& gateway_upstream;
  prometheus::Histogram& gateway_overhead;
  const double start_time = process_start_time();

  // Family::Add builds a fresh metric (a histogram's buckets) even when the labels exist: keep what was added.
  std::mutex http_mutex;
  std::map<std::tuple<std::string, std::string_view, int>, prometheus::Counter*> http_counters;
  std::map<std::string, prometheus::Histogram*, std::less<>> http_histograms;
  std::map<std::pair<std::string, int>, prometheus::Counter*> gateway_counters;
  std::map<std::string, prometheus::Histogram*, std::less<>> gateway_histograms;

  // Scrapes read the sources under a shared lock; attaching takes it exclusively, so it waits for them.
  std::shared_mutex sources_mutex;
  Sources sources;

  Impl()
      : batch_size(prometheus::BuildHistogram()
                       .Name("statefold_fold_batch_size_records")
                       .Help("Records per committed batch.")
                       .Register(registry)
                       .Add({}, kBatchBuckets)),
        fold_duration(prometheus::BuildHistogram()
                          .Name("statefold_fold_duration_seconds")
                          .Help("Time to decode and fold one batch, dead-letter writes included.")
                          .Register(registry)
                          .Add({}, kLatencyBuckets)),
        commit_duration(prometheus::BuildHistogram()
                            .Name("statefold_commit_duration_seconds")
                            .Help("Time to commit one batch's state and offsets to the store.")
                            .Register(registry)
                            .Add({}, kLatencyBuckets)),
        http_requests(prometheus::BuildCounter()
                          .Name("statefold_http_requests_total")
                          .Help("HTTP requests answered, by route template, method and status code.")
                          .Register(registry)),
        http_duration(prometheus::BuildHistogram()
                          .Name("statefold_http_request_duration_seconds")
                          .Help("Time from reading an HTTP request to answering it, by route template.")
                          .Register(registry)),
        gateway_turns(prometheus::BuildCounter()
                          .Name("statefold_gateway_turns_total")
                          .Help("Gateway turns answered, by upstream endpoint and the status the client got.")
                          .Register(registry)),
        gateway_upstream(prometheus::BuildHistogram()
                             .Name("statefold_gateway_upstream_duration_seconds")
                             .Help("Time the upstream took per gateway turn (retries and waits included), by endpoint.")
                             .Register(registry)),
        gateway_overhead(prometheus::BuildHistogram()
                             .Name("statefold_gateway_overhead_seconds")
                             .Help("Time a gateway turn took beyond its upstream call: recording, rendering, Kafka.")
                             .Register(registry)
                             .Add({}, kLatencyBuckets)) {}
};

Metrics::Metrics() : _impl(std::make_unique<Impl>()) {}

Metrics::~Metrics() = default;

void Metrics::attach(const runtime::Engine* engine) {
  Sources sources;
  if (engine != nullptr) {
    sources.stats = &engine->stats();
    sources.assignment = [engine] { return engine->assignment(); };
    sources.lag = [engine] { return engine->lag(); };
    sources.stored_offsets = [engine] { return engine->store().offsets(); };
    sources.store_stats = [engine] { return engine->store().stats(); };
    sources.summary = [engine] { return fold::load_summary(engine->store()); };
  }
  attach_sources(std::move(sources));
}

void Metrics::attach_sources(Sources sources) {
  std::unique_lock lock(_impl->sources_mutex);
  _impl->sources = std::move(sources);
}

void Metrics::batch_committed(std::size_t records, std::chrono::nanoseconds fold_time,
                              std::chrono::nanoseconds commit_time) {
  _impl->batch_size.Observe(static_cast<double>(records));
  _impl->fold_duration.Observe(seconds(fold_time));
  _impl->commit_duration.Observe(seconds(commit_time));
}

void Metrics::observe_http(const http::Request& request, const http::Response& response,
                           std::chrono::nanoseconds latency) {
  const std::string route = response.route.empty() ? "unmatched" : response.route;
  const std::string_view method = bounded_method(request.method);
  const int code = response.status >= 100 && response.status <= 599 ? response.status : 0;
  prometheus::Counter* requests = nullptr;
  prometheus::Histogram* duration = nullptr;
  {
    std::lock_guard lock(_impl->http_mutex);
    auto& counter_slot = _impl->http_counters[{route, method, code}];
    if (counter_slot == nullptr) {
      counter_slot = &_impl->http_requests.Add(
          {{"route", route}, {"method", std::string(method)}, {"code", code == 0 ? "other" : std::to_string(code)}});
    }
    requests = counter_slot;
    auto it = _impl->http_histograms.find(route);
    if (it == _impl->http_histograms.end()) {
      it = _impl->http_histograms.emplace(route, &_impl->http_duration.Add({{"route", route}}, kHttpBuckets)).first;
    }
    duration = it->second;
  }
  requests->Increment();
  duration->Observe(seconds(latency));
}

void Metrics::observe_gateway_turn(std::string_view endpoint, int status, std::chrono::nanoseconds upstream,
                                   std::chrono::nanoseconds overhead) {
  const int code = status >= 100 && status <= 599 ? status : 0;
  prometheus::Counter* turns = nullptr;
  prometheus::Histogram* upstream_time = nullptr;
  {
    std::lock_guard lock(_impl->http_mutex);
    auto& slot = _impl->gateway_counters[{std::string(endpoint), code}];
    if (slot == nullptr) {
      slot = &_impl->gateway_turns.Add(
          {{"endpoint", std::string(endpoint)}, {"code", code == 0 ? "other" : std::to_string(code)}});
    }
    turns = slot;
    auto it = _impl->gateway_histograms.find(endpoint);
    if (it == _impl->gateway_histograms.end()) {
      it = _impl->gateway_histograms
               .emplace(std::string(endpoint),
                        &_impl->gateway_upstream.Add({{"endpoint", std::string(endpoint)}}, kHttpBuckets))
               .first;
    }
    upstream_time = it->second;
  }
  turns->Increment();
  upstream_time->Observe(seconds(upstream));
  _impl->gateway_overhead.Observe(seconds(overhead));
}

std::string Metrics::scrape() {
  std::vector<MetricFamily> families;
  {
    std::shared_lock lock(_impl->sources_mutex);
    const Sources& s = _impl->sources;
    if (s.stats != nullptr) pull_engine_counters(*s.stats, families);
    if (s.assignment) {
      families.push_back(single("statefold_assigned_partitions", "Partitions of the events topic assigned here.",
                                MetricType::Gauge, static_cast<double>(s.assignment().size())));
    }
    if (s.lag) {
      pull_partitions(s.lag(), true, "statefold_partition_lag",
                      "Records behind the partition's high watermark, per assigned partition (left out while the "
                      "broker has not reported the watermark).",
                      families);
    }
    if (s.stored_offsets) {
      pull_partitions(s.stored_offsets(), false, "statefold_partition_stored_offset",
                      "Next offset to fold, as committed with the state, per partition the store holds.", families);
    }
    if (s.store_stats) pull_store_stats(s.store_stats(), families);
    if (s.summary) pull_summary(s.summary(), families);
  }
  families.push_back(single("statefold_process_start_time_seconds",
                            "Start time of the process since the Unix epoch, in seconds.", MetricType::Gauge,
                            _impl->start_time));
  for (MetricFamily& f : _impl->registry.Collect()) families.push_back(std::move(f));
  std::sort(families.begin(), families.end(),
            [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return out.str();
}

}  // namespace statefold::metrics
