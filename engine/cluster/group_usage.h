// Token budgets across a group (spec 9). A key's receipts are folded by whichever instance owns each session's
// partition, so the tokens it used in a budget window are summed over the group: this instance's store gives its
// partitions' figures, and every other member that folds partitions is asked for its own, at most once per
// `refresh` for the same key and window, with a request signed under the group's shared id secret.
//
//   cluster::GroupUsage usage(*cluster, {.secret = id_secret, .local = [&](const auto& q) { ... per partition ... }});
//   auto used = usage.tokens({tenant, "2026-12-01", "2026-12-31", "acme-app"}, 2s);  // before a turn
//   ... in the HTTP handler, before authentication: if (path == cluster::kPeerUsagePath) respond(usage.answer(req));
//
// A partition's tokens in a window only grow, so every figure ever seen for it is a lower bound of what it holds
// now: the sum takes, per partition, the largest figure from this store or any member's answer. A member that does
// not answer therefore counts at what it last said (a warning is logged); one never heard from counts nothing, and
// the budget then holds on the other instances' share only until it answers.
//
// Thread-safety: every method from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "engine/base/result.h"
#include "engine/cluster/cluster.h"
#include "engine/cluster/peer_signing.h"
#include "engine/http/http.h"

namespace statefold::cluster {

// Where members ask each other for a key's tokens (POST, JSON body, signed): not a client route.
inline constexpr std::string_view kPeerUsagePath = "/v1/internal/usage";

struct UsageQuery {
  std::optional<std::string> tenant;  // the sessions of this tenant; nullopt: every tenant's (an operator's key)
  std::string from_day;               // YYYY-MM-DD, both included
  std::string through_day;
  std::string key;  // the API key's name the receipts were made under
};

// Tokens (input + output) per partition of the event topic.
using PartitionTokens = std::map<std::int32_t, std::uint64_t>;

struct GroupUsageOptions {
  std::string secret;  // the group's shared id secret (serve --id-secret-file): members sign and check queries with it
  // The tokens of a query in each partition this instance's store holds.
  std::function<base::Result<PartitionTokens>(const UsageQuery&)> local;
  std::chrono::milliseconds refresh{1000};  // a member is asked again for the same query after this long
  std::chrono::milliseconds timeout{2000};  // how long an ask may take before it counts as unanswered
  std::chrono::seconds clock_skew{60};      // a signed query older or newer than this is refused (replays)
};

class GroupUsage {
 public:
  // `cluster` must outlive this.
  GroupUsage(const Cluster& cluster, GroupUsageOptions options);
  ~GroupUsage();
  GroupUsage(const GroupUsage&) = delete;
  GroupUsage& operator=(const GroupUsage&) = delete;

  // The tokens `query` names, over every partition of the group (see above). Waits up to `wait` for the members
  // asked now; answers that come later are kept for the next call. A turn's check, on a thread that may block,
  // waits `timeout`; a report on an HTTP I/O thread only a moment. An error only when this store cannot be read;
  // members that cannot be asked count at their last answer.
  base::Result<std::uint64_t> tokens(const UsageQuery& query, std::chrono::milliseconds wait);
  // Answers a member's query (kPeerUsagePath) from this store: {"instance", "partitions": {"<p>": tokens}}; 401
  // when its signature is missing, wrong or too old, 400 when its body is not a query.
  http::Response answer(const http::Request& request) const;

  // Members' answers that did not come (unreachable, refused, late) since the start, for metrics and tests.
  std::uint64_t unanswered() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> _impl;  // shared with the asks in flight, which may outlive this
};

// The signature header's value for `body` sent by `instance` at `unix_ms` (exposed for tests).
std::string sign_peer_query(std::string_view secret, std::string_view instance, std::int64_t unix_ms,
                            std::string_view body);

}  // namespace statefold::cluster
