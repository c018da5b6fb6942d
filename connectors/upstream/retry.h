// Retry decisions for upstream calls: which statuses are retried, how long to back off, and what a Retry-After header
// asks for. Pure, no I/O (the random draw and the clock are arguments).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace statefold::upstream {

// 429, 500, 502, 503 and 504: worth another attempt. Other statuses (other 4xx in particular) are final.
bool retryable_status(int status);

// The wait before retry number `retry` (1 = the first retry): a random time in [d/2, d] with
// d = min(cap, base * 2^(retry-1)); `unit_random` in [0, 1) picks it.
std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        double unit_random);

// A Retry-After value (delay-seconds, or an HTTP-date: IMF-fixdate, RFC 850 or asctime) as a wait from `now`; a
// date in the past is a wait of 0. nullopt when the value is neither.
std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now);

// OpenAI and Azure also send `retry-after-ms` (a number of milliseconds, possibly fractional).
std::optional<std::chrono::milliseconds> parse_retry_after_ms(std::string_view value);

}  // namespace statefold::upstream
