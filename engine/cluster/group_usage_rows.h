// Usage reports across a group (GET /v1/usage; spec 7: any instance answers). A receipt's usage row is folded by
// the owner of its session's partition, so a report is gathered: this instance reads the partitions it owns, and
// asks every other owner for its partitions' rows with a query signed under the group's shared id secret. Rows for
// the same tenant, day, key and model from different partitions add up. A partition whose owner is not known, is
// still catching up, or did not answer makes the report fail (the caller answers 503 and the client retries): never
// figures that silently lack a share.
//
//   cluster::GroupUsageRows usage(*cluster, {.secret = id_secret, .partitions = 8, .local = ...});
//   usage.report({"acme", "2026-12-01", "2026-12-31"}, [respond](base::Result<cluster::UsageRows> rows) { ... });
//   ... in the HTTP handler, before authentication:
//   if (path == cluster::kPeerUsageRowsPath) respond(usage.answer(req));
//
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/base/result.h"
#include "engine/cluster/cluster.h"
#include "engine/http/http.h"

namespace statefold::cluster {

// Where members ask each other for their usage rows (POST, JSON body, signed): not a client route.
inline constexpr std::string_view kPeerUsageRowsPath = "/v1/internal/usage-rows";

struct UsageRowsQuery {
  std::optional<std::string> tenant;  // one tenant's rows; nullopt: every tenant's
  std::string from_day;               // YYYY-MM-DD, both included
  std::string through_day;
};

// What the receipts of one tenant, UTC day, API key and model recorded (GET /v1/usage's rows).
struct UsageRow {
  std::string tenant;
  std::string day;
  std::string key;
  std::string model;
  std::uint64_t calls = 0;
  std::uint64_t failed = 0;
  std::uint64_t input_tokens = 0;
  std::uint64_t output_tokens = 0;
  std::uint64_t cached_tokens = 0;
};

struct UsageRows {
  std::vector<UsageRow> rows;          // in tenant, day, key, model order
  std::vector<std::int32_t> not_here;  // asked-for partitions the answering instance cannot read now
};

// The rows of disjoint partition sets as one report: rows of the same tenant, day, key and model added up, in that
// order; not_here joined, in order, once each. Pure.
UsageRows merge_usage_rows(std::vector<UsageRows> shares);

struct GroupUsageRowsOptions {
  std::string secret;  // the group's shared id secret (serve --id-secret-file)
  int partitions = 0;  // the events topic's partition count
  // The rows of `partitions` in this instance's store; partitions it does not own, or is still catching up on, go
  // to not_here.
  std::function<base::Result<UsageRows>(const UsageRowsQuery&, const std::vector<std::int32_t>& partitions)> local;
  std::chrono::milliseconds timeout{5000};  // how long a member's answer may take
  std::chrono::seconds clock_skew{60};      // a signed query older or newer than this is refused (replays)
};

class GroupUsageRows {
 public:
  // `cluster` must outlive this.
  GroupUsageRows(const Cluster& cluster, GroupUsageRowsOptions options);
  ~GroupUsageRows();
  GroupUsageRows(const GroupUsageRows&) = delete;
  GroupUsageRows& operator=(const GroupUsageRows&) = delete;

  // The rows over every partition of the topic, given to `done` on this thread (no member to ask) or on the thread
  // of the last answer. An error names the partitions that could not be read and why.
  void report(const UsageRowsQuery& query, std::function<void(base::Result<UsageRows>)> done) const;
  // Answers a member's query (kPeerUsageRowsPath) from this store: {"instance","rows","not_here"}; 401 when its
  // signature is missing, wrong or too old, 400 when its body is not a query.
  http::Response answer(const http::Request& request) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> _impl;  // shared with the asks in flight, which may outlive this
};

}  // namespace statefold::cluster
