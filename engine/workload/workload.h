// workload: a realistic, deterministic stream of events in the JSON-lines form, for demos, tests and benchmarks.
// Pure; the same options always give the same bytes.
//
//   workload::generate({.sessions = 1000, .events = 100000, .seed = 7},
//                      [&](std::string_view line) { out << line << '\n'; });
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>

namespace statefold::workload {

struct Options {
  std::uint64_t sessions = 100;
  std::uint64_t events = 1000;       // total lines written, across all sessions
  std::uint64_t seed = 1;
  double duplicate_rate = 0.01;      // share of events that re-send an earlier event of their session verbatim
  double stale_rate = 0.01;          // share of events carrying an expected_version that is already stale
  std::string_view session_prefix = "session-";
};

// Calls `sink` once per event, in the order a producer would append them. Every session begins with
// SessionOpened; the rest are user/assistant turns, tool calls with their results, memory updates, summaries,
// inference receipts and custom events, interleaved across sessions.
void generate(const Options& options, const std::function<void(std::string_view json_line)>& sink);

}  // namespace statefold::workload
