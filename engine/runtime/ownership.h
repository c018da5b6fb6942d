// Ownership: whether this instance folds a session, as the engine's consumer group assigned its partition. A
// vocabulary type for the modules that must send a client elsewhere (the API, the gateway) without holding the
// engine.
#pragma once

#include <cstdint>

namespace statefold::runtime {

// This instance folds the session (owned), another one does (elsewhere: `partition` is the session's), or nobody
// here yet (unassigned: starting, stopping or between rebalances).
struct Ownership {
  enum class State { owned, elsewhere, unassigned } state = State::owned;
  std::int32_t partition = -1;
};

}  // namespace statefold::runtime
