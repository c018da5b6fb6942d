#include "engine/base/time.h"

#include <charconv>
#include <cstdio>
#include <ctime>

namespace statefold::base {

Result<std::int64_t> parse_time_ms(const std::string& text) {
  std::int64_t ms = 0;
  if (auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
      ec == std::errc() && ptr == text.data() + text.size()) {
    return ms;
  }
  std::tm tm{};
  const char* rest = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return make_error("expected an RFC 3339 time or milliseconds since the epoch, got \"" + text + "\"");
  std::int64_t fraction_ms = 0;
  if (*rest == '.') {
    int digits = 0;
    ++rest;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 3) fraction_ms = fraction_ms * 10 + (*rest - '0');
      ++digits;
      ++rest;
    }
    while (digits++ < 3) fraction_ms *= 10;
  }
  std::int64_t offset_s = 0;
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    int hh = 0;
    int mm = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) return make_error("bad time zone in \"" + text + "\"");
    offset_s = (*rest == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
    rest += 6;
  } else {
    return make_error("time \"" + text + "\" needs a zone (Z or +HH:MM)");
  }
  if (*rest != '\0') return make_error("unexpected \"" + std::string(rest) + "\" in time \"" + text + "\"");
  return (static_cast<std::int64_t>(timegm(&tm)) - offset_s) * 1000 + fraction_ms;
}

std::string utc_date(std::chrono::sys_days day) {
  const std::chrono::year_month_day ymd(day);
  char text[32];
  std::snprintf(text, sizeof text, "%04d-%02u-%02u", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                static_cast<unsigned>(ymd.day()));
  return text;
}

std::string utc_now(const char* format) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  return std::string(buf, std::strftime(buf, sizeof buf, format, &tm));
}

}  // namespace statefold::base
