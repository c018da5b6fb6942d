// Retry decisions of retry.h.
#include "connectors/upstream/retry.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>
#include <string>

namespace statefold::upstream {

bool retryable_status(int status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::chrono::milliseconds backoff_delay(int retry, std::chrono::milliseconds base, std::chrono::milliseconds cap,
                                        double unit_random) {
  const int doublings = std::clamp(retry - 1, 0, 30);
  const double base_ms = static_cast<double>(std::max<std::int64_t>(base.count(), 0));
  const double full = std::min(static_cast<double>(cap.count()), base_ms * std::ldexp(1.0, doublings));
  const double r = std::clamp(unit_random, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(full / 2 + r * (full / 2)));
}

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

constexpr std::int64_t kMaxSeconds = 100LL * 365 * 24 * 3600;

}  // namespace

std::optional<std::chrono::milliseconds> parse_retry_after(std::string_view value,
                                                           std::chrono::system_clock::time_point now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 12) return std::chrono::milliseconds(kMaxSeconds * 1000);
    std::int64_t seconds = 0;
    std::from_chars(value.data(), value.data() + value.size(), seconds);
    return std::chrono::milliseconds(std::min(seconds, kMaxSeconds) * 1000);
  }
  // The three HTTP-date forms (RFC 9110 5.6.7); strptime in the C locale, which a server library never changes.
  const std::string text(value);
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* rest = strptime(text.c_str(), format, &tm);
    if (rest == nullptr || *rest != '\0') continue;
    const std::time_t when = timegm(&tm);
    if (when == static_cast<std::time_t>(-1)) continue;
    const auto at = std::chrono::system_clock::from_time_t(when);
    if (at <= now) return std::chrono::milliseconds(0);
    return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
  }
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> parse_retry_after_ms(std::string_view value) {
  value = trim(value);
  if (value.empty() || value.size() > 20) return std::nullopt;
  double ms = 0;
  const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
  if (ec != std::errc() || end != value.data() + value.size() || !(ms >= 0) || !std::isfinite(ms)) {
    return std::nullopt;
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(ms, 1e12)));
}

}  // namespace statefold::upstream
