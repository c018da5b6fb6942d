#include "engine/base/logging.h"

#include "engine/base/json_writer.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace statefold::base {

namespace {
std::atomic<LogFormat> g_format{LogFormat::text};
std::atomic<LogLevel> g_level{LogLevel::info};
std::mutex g_mutex;

const char* level_name(LogLevel level) {
  switch (level) {
    case LogLevel::debug: return "DEBUG";
    case LogLevel::info: return "INFO";
    case LogLevel::warn: return "WARN";
    case LogLevel::error: return "ERROR";
  }
  return "INFO";
}

std::string now_rfc3339() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void set_log_format(LogFormat format) { g_format = format; }
void set_log_level(LogLevel level) { g_level = level; }

void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields) {
  if (level < g_level.load()) return;
  std::string line;
  if (g_format.load() == LogFormat::json) {
    line = "{\"time\":\"" + now_rfc3339() + "\",\"level\":\"" + level_name(level) + "\",\"msg\":";
    append_json_string(line, message);
    for (const auto& [key, value] : fields) {
      line.push_back(',');
      append_json_string(line, key);
      line.push_back(':');
      append_json_string(line, value);
    }
    line += "}\n";
  } else {
    line = now_rfc3339() + " " + level_name(level) + " " + std::string(message);
    for (const auto& [key, value] : fields) {
      line.push_back(' ');
      line.append(key).push_back('=');
      line.append(value);
    }
    line.push_back('\n');
  }
  std::lock_guard lock(g_mutex);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace statefold::base
