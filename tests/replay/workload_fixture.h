// What the replay and snapshot tests share: a generated workload kept as JSON lines with the generator's own
// account of it, and the partition-offset maps the commands take and print.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "engine/workload/workload.h"

namespace statefold::testing {

using Offsets = std::map<std::int32_t, std::int64_t>;

struct Generated {
  workload::Options options;
  workload::Stats stats;
  std::vector<std::string> lines;
};

// `prefix` must outlive the result (workload::Options keeps a view of it): pass a literal.
inline Generated generate(std::uint64_t sessions, std::uint64_t events, std::uint64_t seed,
                          std::string_view prefix = "session-") {
  Generated g;
  g.options.sessions = sessions;
  g.options.events = events;
  g.options.seed = seed;
  g.options.session_prefix = prefix;
  g.stats = workload::generate(g.options, [&](std::string_view line) { g.lines.emplace_back(line); });
  return g;
}

inline std::int64_t sum(const Offsets& offsets) {
  std::int64_t total = 0;
  for (const auto& [p, o] : offsets) total += o;
  return total;
}

// The --until-offset form: "0:120,1:98".
inline std::string offsets_arg(const Offsets& offsets) {
  std::string out;
  for (const auto& [p, o] : offsets) {
    if (!out.empty()) out.push_back(',');
    out += std::to_string(p) + ":" + std::to_string(o);
  }
  return out;
}

}  // namespace statefold::testing
