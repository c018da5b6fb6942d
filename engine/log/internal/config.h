// Internal: building librdkafka configurations with errors that name the property.
#pragma once

#include <librdkafka/rdkafka.h>

#include <string>

#include "engine/base/result.h"
#include "engine/log/log.h"

namespace statefold::log::internal {

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using HandlePtr = std::unique_ptr<rd_kafka_t, HandleDeleter>;

base::Result<ConfPtr> make_conf(const Properties& properties);
base::Result<void> set(rd_kafka_conf_t* conf, const std::string& name, const std::string& value);
// Routes librdkafka's own log lines to stderr with a statefold prefix.
void route_logs(rd_kafka_conf_t* conf);

}  // namespace statefold::log::internal
