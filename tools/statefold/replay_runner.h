// Rebuilding a store from the topic, shared by `replay` and `verify`: the engine in replay mode plus a progress
// display (a live line on a terminal, periodic log lines elsewhere).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "engine/base/result.h"
#include "engine/log/log.h"

namespace statefold::cli {

struct ReplayRequest {
  std::string brokers;
  std::string topic;
  std::string data_dir;
  std::map<std::int32_t, std::int64_t> stop_at;  // fold each partition up to (not including) this offset
  std::uint64_t memory_budget_mb = 512;
  bool wal = true;  // RocksDB's WAL; off, an interrupted replay resumes from the last flushed memtable
  bool quiet = false;
};

struct ReplayOutcome {
  std::uint64_t records = 0;  // folded by this run (a resumed replay counts only what it added)
  double seconds = 0;
};

base::Result<ReplayOutcome> run_replay(const ReplayRequest& request);

// "0:1200,1:980" -> {0:1200, 1:980}
base::Result<std::map<std::int32_t, std::int64_t>> parse_offsets(const std::string& text);

}  // namespace statefold::cli
