// fork: the events that create a session whose state equals another's at a given version (spec section 5).
// A fork lives on the log like any session: a SessionOpened naming the parent and the version, then copies of the
// parent's accepted events up to that version, so replay, audit and verify treat it like any other session and it
// never depends on the parent's partition. Pure: reads a fold::Reader, returns canonical events.
//
//   auto plan = fork::plan(store_reader, {.parent = "chat-42", .version = 7, .child = "chat-42-b"});
//   if (plan) appender.append(plan->child, std::move(plan->events), ...);   // one transaction
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/base/result.h"
#include "engine/fold/kv.h"

namespace statefold::fork {

struct Request {
  std::string parent;
  std::uint64_t version = 0;  // 0: the parent's current version
  std::string child;
  std::int64_t occurred_at_us = 0;
};

struct Plan {
  std::string child;
  std::uint64_t parent_version = 0;
  // (event id, canonical FlatBuffers bytes), in order. The first carries expected_version 0 (the child must not
  // exist yet) and each later one expected_previous_event_id: the fork folds whole or not at all. Event ids are
  // derived from (child, parent event id), so sending the same plan twice changes nothing.
  std::vector<std::pair<std::string, std::vector<std::uint8_t>>> events;
};

// Errors name the problem: no such parent, version out of range, an erased parent, an event of a type this build
// does not know (it could not be copied faithfully), a child id equal to the parent's.
base::Result<Plan> plan(const fold::Reader& reader, const Request& request);

}  // namespace statefold::fork
