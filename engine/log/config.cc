#include "engine/log/internal/config.h"

#include <cstdio>

namespace statefold::log::internal {

base::Result<void> set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char error[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
    return base::make_error("kafka property " + name + "=" + value + ": " + error);
  }
  return {};
}

base::Result<ConfPtr> make_conf(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  for (const auto& [name, value] : properties) {
    if (auto r = set(conf.get(), name, value); !r) return r.error();
  }
  return conf;
}

void route_logs(rd_kafka_conf_t* conf) {
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t* rk, int level, const char* facility, const char* message) {
    std::fprintf(stderr, "librdkafka %s level=%d %s: %s\n", rd_kafka_name(rk), level, facility, message);
  });
}

}  // namespace statefold::log::internal

namespace statefold::log {
std::string librdkafka_version() { return rd_kafka_version_str(); }
}  // namespace statefold::log
