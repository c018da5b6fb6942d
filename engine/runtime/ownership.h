// Ownership: whether this instance folds a session, as the engine's consumer group assigned its partition. A
// vocabulary type for the modules that must send a client elsewhere (the API, the gateway, engine/cluster) without
// holding the engine, and the one answer they refuse such a request with:
//
//   if (auto refused = runtime::refuse_unless_owned(engine.ownership(id), id, route)) return respond(*refused);
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "engine/http/http.h"

namespace statefold::runtime {

// This instance folds the session (owned), another one does (elsewhere: `partition` is the session's), nobody here
// yet (unassigned: starting, stopping or between rebalances), or this instance was just given the partition and is
// still folding what was on it then (moving: its reads would miss writes already acknowledged elsewhere).
struct Ownership {
  enum class State { owned, elsewhere, unassigned, moving } state = State::owned;
  std::int32_t partition = -1;
};

// The header a refusal for a session folded elsewhere (421) or not yet here (503) names the session's partition in,
// so that the layer that forwards requests between instances (engine/cluster) knows where the request belongs.
inline constexpr char kPartitionHeader[] = "X-Statefold-Partition";

// Why a request for `session_id` is not answered here (for any state but owned), as the API and the gateway say it.
inline std::string not_here_message(const Ownership& owner, std::string_view session_id) {
  const std::string session(session_id);
  const std::string partition = std::to_string(owner.partition);
  switch (owner.state) {
    case Ownership::State::unassigned: return "no partitions are assigned to this instance yet; retry shortly";
    case Ownership::State::moving:
      return "partition " + partition + " of session " + session +
             " was just assigned to this instance, which is still folding what the log held then; retry shortly";
    case Ownership::State::elsewhere:
      return "session " + session + " is on partition " + partition + ", which this instance does not own";
    case Ownership::State::owned: break;
  }
  return {};
}

// The answer to a request this instance does not serve because of `owner` (any state but owned), in OpenAI's error
// shape with the partition beside it, {"error": {"message", "type", "param", "code"}, "partition": n}: 421
// misdirected_request when another instance folds the partition; 503 with Retry-After while none is assigned here
// (code null) or it is still moving in (partition_moving). kPartitionHeader names the partition, and x-should-retry
// tells OpenAI's SDKs whether to retry (a 503: yes, nothing was done; a 421: no, the same address answers the same).
http::Response refusal(const Ownership& owner, std::string_view message, std::string route = {});

// nullopt when `owner` is owned; otherwise the refusal of a request for `session_id`, saying not_here_message.
std::optional<http::Response> refuse_unless_owned(const Ownership& owner, std::string_view session_id,
                                                  std::string route);

// A new session id, `prefix` then `random_bytes` random bytes in hex, that lands on a partition this instance folds
// by `ownership_of` (the engine's view, or the gateway's): on `partition` when given, so that a fork or a branch stays
// with its parent through rebalances (up to 4096 draws: one in p partitions lands there), else on any partition not
// another instance's (up to 64: with k of p folded here, one in p/k lands, so 64 miss only when it folds none). When
// none lands, the last one drawn: the caller refuses the request or the cluster forwards it to the id's owner.
std::string random_session_id(std::string_view prefix, std::size_t random_bytes,
                              const std::function<Ownership(std::string_view)>& ownership_of,
                              std::optional<std::int32_t> partition = std::nullopt);

}  // namespace statefold::runtime
