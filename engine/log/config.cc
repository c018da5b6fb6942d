#include "engine/log/internal/config.h"

#include <cstdio>
#include <mutex>

#include "engine/base/logging.h"

namespace statefold::log {

namespace {
std::mutex g_client_mutex;
Properties& client_properties() {
  static Properties properties;
  return properties;
}
}  // namespace

void set_client_properties(Properties properties) {
  for (const auto& [name, value] : properties) {
    // librdkafka before 2.6.1 repeats the client nonce in SCRAM's final message; Kafka 3.8.1+ and 4.x refuse it
    // (CVE-2024-56128's fix), so the login fails as "invalid credentials" with the right password.
    if (name == "sasl.mechanism" && value.starts_with("SCRAM") && rd_kafka_version() < 0x020601ff) {
      base::log_warn("librdkafka " + std::string(rd_kafka_version_str()) +
                         " cannot log in with SCRAM to Kafka 3.8.1 or later (librdkafka#4895, fixed in 2.6.1): "
                         "such brokers answer \"invalid credentials\"; use sasl.mechanism = PLAIN over SASL_SSL",
                     {{"sasl.mechanism", value}});
    }
  }
  std::lock_guard lock(g_client_mutex);
  client_properties() = std::move(properties);
}

bool is_secret_property(std::string_view name) {
  return name.find("password") != std::string_view::npos || name.find("secret") != std::string_view::npos ||
         name.find("jaas") != std::string_view::npos || name == "ssl.key.pem" || name == "ssl_key" ||
         name == "sasl.oauthbearer.config";
}

}  // namespace statefold::log

namespace statefold::log::internal {

base::Result<void> set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char error[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK) {
    // librdkafka's message may quote the value: for a secret, only the property is named.
    if (is_secret_property(name)) return base::make_error("kafka property " + name + ": librdkafka refused its value");
    return base::make_error("kafka property " + name + "=" + value + ": " + error);
  }
  return {};
}

base::Result<ConfPtr> make_conf(const Properties& properties) {
  ConfPtr conf(rd_kafka_conf_new());
  // librdkafka's reconnect backoff doubles up to 10 s by default: after an outage of that long, a client found the
  // broker back up to 10 s late. Capped at a second, every client is back within about a second of the broker
  // (a connection attempt a second per broker during an outage costs nothing). The caller may still set it.
  if (auto r = set(conf.get(), "reconnect.backoff.max.ms", "1000"); !r) return r.error();
  for (const auto& [name, value] : properties) {
    if (auto r = set(conf.get(), name, value); !r) return r.error();
  }
  std::lock_guard lock(g_client_mutex);
  for (const auto& [name, value] : client_properties()) {
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
