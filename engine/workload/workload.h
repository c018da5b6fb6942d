// workload: a realistic, deterministic stream of events in the JSON-lines form, for demos, tests and benchmarks.
// Pure; the same options always give the same bytes. Thread-safe: no shared state, call from any thread.
//
//   auto stats = workload::generate({.sessions = 1000, .events = 100000, .seed = 7},
//                                   [&](std::string_view line) { out << line << '\n'; });
//   // an engine that folded those lines must report stats.accepted, stats.duplicates, stats.stale.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace statefold::workload {

struct Options {
  std::uint64_t sessions = 100;
  std::uint64_t events = 1000;       // total lines written, across all sessions
  std::uint64_t seed = 1;
  double duplicate_rate = 0.01;      // share of events that re-send an earlier event of their session verbatim
  double stale_rate = 0.01;          // share of events carrying an expected_version that is already stale
  std::string_view session_prefix = "session-";
  std::string_view source = "gen";   // the envelope's `source`
  // A duplicate re-sends one of the last `duplicate_lookback` lines, so it stays inside any dedupe window that
  // covers at least this many events of a session.
  std::uint64_t duplicate_lookback = 256;
};

// What the generator knows about its own output, counted exactly as an engine folding it in order must count:
// a line whose event id the session already accepted is a duplicate (the generator only re-sends lines without an
// expected_version, so the order of the dedupe and version checks does not matter); otherwise a line whose
// expected_version differs from the session's version is rejected; anything else is accepted and bumps the version.
struct Stats {
  std::uint64_t lines = 0;
  std::uint64_t accepted = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t stale = 0;                 // rejected: expected_version below the session's version
  std::uint64_t expected_version_ok = 0;   // accepted lines that carried the correct expected_version
  std::uint64_t sessions_opened = 0;       // min(sessions, events)
  std::uint64_t sessions_closed = 0;
  std::map<std::string, std::uint64_t, std::less<>> accepted_by_type;  // payload_type name -> accepted events
  // final_versions[i]: version of session_id(options, i) after the last line, for the sessions_opened sessions
  // that appear (always the first ones); the others stay at version 0.
  std::vector<std::uint64_t> final_versions;
};

// Calls `sink` once per event, in the order a producer would append them, and returns what it wrote. Every
// session begins with SessionOpened; the rest are user/assistant turns, tool calls with their results, memory
// updates, summaries, inference receipts and custom events, interleaved across sessions. Throws
// std::invalid_argument for options that cannot be met (no sessions for a non-zero event count, more than 2^32 - 1
// sessions, rates outside [0, 1) or summing to 1 or more, duplicates without a lookback, a session id longer than
// 256 bytes). Receipts carry random request hashes, not hashes of a rendered request: an audit flags them.
Stats generate(const Options& options, const std::function<void(std::string_view json_line)>& sink);

// The id of the index-th session (0-based): session_prefix + the number index + 1, zero-padded to at least six
// digits (and to the width of `sessions`), e.g. "session-000042" for index 41.
std::string session_id(const Options& options, std::uint64_t index);

}  // namespace statefold::workload
