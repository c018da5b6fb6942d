#include "connectors/audit/verify.h"

#include <boost/json.hpp>

#include <algorithm>
#include <limits>

#include "engine/base/hex.h"
#include "engine/fold/fold.h"
#include "engine/fold/read.h"

namespace statefold::audit {

base::Result<std::map<std::string, std::string>> state_hashes(const fold::Reader& reader) {
  std::map<std::string, std::string> out;
  auto read = fold::visit_sessions(reader, "", "", std::numeric_limits<std::uint64_t>::max(),
                                   [&](std::string_view id, const state::SessionHeaderT& header) {
                                     out.emplace(id, base::to_hex(fold::state_hash(header)));
                                   },
                                   fold::Sessions::all);
  if (!read) return read.error();
  return out;
}

std::string store_hash_of(const std::map<std::string, std::string>& state_hashes) {
  std::vector<std::uint8_t> acc(32, 0);
  for (const auto& [id, hex] : state_hashes) {
    auto digest = base::from_hex(hex);
    base::Digest d{};
    std::copy(digest->begin(), digest->end(), d.begin());
    const auto term = fold::store_hash_term(id, d);
    for (std::size_t i = 0; i < acc.size(); ++i) acc[i] ^= term[i];
  }
  return base::to_hex(acc);
}

VerifyReport compare(const std::map<std::string, std::string>& live, const std::map<std::string, std::string>& rebuilt) {
  VerifyReport report;
  report.sessions = live.size();
  report.live_store_hash = store_hash_of(live);
  report.rebuilt_store_hash = store_hash_of(rebuilt);
  for (const auto& [id, hash] : live) {
    auto it = rebuilt.find(id);
    if (it == rebuilt.end()) {
      report.differing.push_back({id, hash, std::nullopt});
    } else if (it->second != hash) {
      report.differing.push_back({id, hash, it->second});
    }
  }
  for (const auto& [id, hash] : rebuilt) {
    if (!live.contains(id)) report.differing.push_back({id, std::nullopt, hash});
  }
  return report;
}

namespace {

boost::json::value or_null(const std::optional<std::string>& hash) {
  return hash ? boost::json::value(*hash) : boost::json::value(nullptr);
}

}  // namespace

std::string to_json(const VerifyReport& report) {
  boost::json::array differing;
  for (const auto& d : report.differing) {
    differing.push_back({{"session_id", d.session_id}, {"live", or_null(d.live)}, {"rebuilt", or_null(d.rebuilt)}});
  }
  boost::json::object o{{"ok", report.ok()},
                        {"sessions", report.sessions},
                        {"live_store_hash", report.live_store_hash},
                        {"rebuilt_store_hash", report.rebuilt_store_hash},
                        {"differing", std::move(differing)}};
  return boost::json::serialize(o) + "\n";
}

std::string to_text(const VerifyReport& report, std::uint64_t records, std::size_t show) {
  std::string out = "verified " + std::to_string(report.sessions) + " session(s) against a rebuild of " +
                    std::to_string(records) + " record(s)\n";
  out.append("live store hash:    ").append(report.live_store_hash).append("\n");
  out.append("rebuilt store hash: ").append(report.rebuilt_store_hash).append("\n");
  std::size_t shown = 0;
  for (const auto& d : report.differing) {
    if (shown++ >= show) break;
    out.append("DIFFERS ").append(d.session_id).append(": live ").append(d.live.value_or("(missing)"));
    out.append(", rebuilt ").append(d.rebuilt.value_or("(missing)")).append("\n");
  }
  out.append(report.ok() ? "OK: every session matches\n"
                         : "MISMATCH: " + std::to_string(report.differing.size()) + " session(s) differ\n");
  return out;
}

}  // namespace statefold::audit
