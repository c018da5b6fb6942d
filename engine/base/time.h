// Times as people and tools write them: RFC 3339 ("2026-11-27T10:00:00.250Z", "...+01:00") or milliseconds since
// the Unix epoch. Used wherever a command or a query takes a moment (replay --until-time, time travel).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/base/result.h"

namespace statefold::base {

// Milliseconds since the epoch; the error names what is wrong ("needs a zone (Z or +HH:MM)", ...).
Result<std::int64_t> parse_time_ms(const std::string& text);

// A UTC calendar day as "YYYY-MM-DD": how usage rows and token budgets name days.
std::string utc_date(std::chrono::sys_days day);

// The current UTC time in strftime's `format` (default: RFC 3339 to the second, "2026-12-04T20:00:00Z"), for
// manifests and names.
std::string utc_now(const char* format = "%Y-%m-%dT%H:%M:%SZ");

}  // namespace statefold::base
