// metrics: statefold's Prometheus metrics, rendered for `serve`'s /metrics in the text exposition format 0.0.4
// (spec section 7). The engine pushes batch timings through runtime::EngineProbe and the HTTP server pushes every
// answered request; the rest (engine counters, lag, stored offsets, store figures) is pulled at scrape time.
//
//   metrics::Metrics metrics;
//   metrics.attach(engine.get());   // before run(); attach(nullptr) before the engine is destroyed
//   engine->set_probe(&metrics);
//   auto server = http::Server::start(options, handler,
//       [&](const http::Request& rq, const http::Response& rs, std::chrono::nanoseconds latency) {
//         metrics.observe_http(rq, rs, latency);
//       });
//   // GET /metrics: {.status = 200, .body = metrics.scrape(), .content_type = std::string(metrics::kContentType)}
//
// Thread-safety: every member may be called from any thread, concurrently. batch_committed and observe_http only
// touch in-memory figures; they never wait for a scrape's reads of the engine or the store.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/fold/fold.h"
#include "engine/http/http.h"
#include "engine/runtime/engine.h"
#include "engine/store/store.h"

namespace statefold::metrics {

inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Where scrape() pulls figures from, on the scraping thread while the engine runs. attach(engine) fills every
// member from the engine; tests feed their own. An empty member leaves its series out of the output.
struct Sources {
  const runtime::EngineStats* stats = nullptr;  // not owned; must outlive the attachment
  std::function<std::vector<std::int32_t>()> assignment;
  std::function<std::map<std::int32_t, std::int64_t>()> lag;             // a negative lag (unknown) is left out
  std::function<std::map<std::int32_t, std::int64_t>()> stored_offsets;  // next offset to fold, per partition
  std::function<store::Stats()> store_stats;
  std::function<state::StoreSummaryT()> summary;
};

class Metrics final : public runtime::EngineProbe {
 public:
  Metrics();
  ~Metrics() override;
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Pulls the engine's figures at scrape time from now on; nullptr detaches. Returns once no scrape is reading
  // the previous sources, so the previous engine may be destroyed right after attach(nullptr).
  void attach(const runtime::Engine* engine);
  void attach_sources(Sources sources);

  void batch_committed(std::size_t records, std::chrono::nanoseconds fold_time,
                       std::chrono::nanoseconds commit_time) override;
  // An empty response route counts as route="unmatched", and unusual methods as method="other", so a client
  // cannot grow the number of series.
  void observe_http(const http::Request& request, const http::Response& response, std::chrono::nanoseconds latency);

  // One gateway turn answered: its endpoint (from the configuration: a bounded set), the status the client got,
  // the upstream's time and the rest of the turn's time (statefold's overhead).
  void observe_gateway_turn(std::string_view endpoint, int status, std::chrono::nanoseconds upstream,
                            std::chrono::nanoseconds overhead);

  // Reads the pulled figures, then renders everything in the Prometheus text format (version 0.0.4).
  std::string scrape();

 private:
  struct Impl;
  std::unique_ptr<Impl> _impl;
};

}  // namespace statefold::metrics
