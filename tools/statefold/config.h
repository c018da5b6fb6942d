// Settings files for subcommands: a TOML file whose keys are the subcommand's long flag names
// (`brokers = "127.0.0.1:9092"`, `memory-budget-mb = 512`). Precedence: defaults < file < STATEFOLD_* environment
// < flags. Call after CLI11 parsed the command line (which also applied the environment).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "engine/base/result.h"
#include "engine/log/log.h"

namespace statefold::cli {

// The table of the same file that configures the gateway's upstream endpoints and routes (docs/configuration.md):
// not flags, so apply_config_file leaves it to upstream::load_routing_toml.
inline constexpr std::string_view kUpstreamTable = "upstream";
// The table of API keys and their roles (auth::parse_config, docs/security.md), read by serve.
inline constexpr std::string_view kAuthTable = "auth";

// librdkafka properties for every Kafka client the command makes (read_kafka_table).
inline constexpr std::string_view kKafkaTable = "kafka";

// The [kafka] table of a TOML file: librdkafka client properties as strings ("security.protocol" = "SASL_SSL",
// "sasl.username" = "statefold", "ssl.ca.location" = "/etc/kafka/ca.pem"), and in [kafka.from_env] the properties
// whose values come from environment variables ("sasl.password" = "STATEFOLD_KAFKA_PASSWORD"). A secret property
// (log::is_secret_property) written in the file itself is refused, and so is an unset variable; errors name the
// file, line and property, never a value. No [kafka] table: no properties.
base::Result<log::Properties> read_kafka_table(const std::string& path);

// For a command that talks to Kafka: `--config FILE` (or STATEFOLD_CONFIG), whose [kafka] table is read and applied
// to every Kafka client the process makes (log::set_client_properties). The file may be serve's: other tables are
// left to serve. Call use_kafka_config in the command's callback, before it makes a client; "": nothing to do.
CLI::Option* add_kafka_config_option(CLI::App* command, std::string& path);
base::Result<void> use_kafka_config(const std::string& path);
// use_kafka_config in a command's callback: false (the error on stderr, as "statefold <command>: ...") on a bad file.
bool kafka_config_ok(const std::string& path, std::string_view command);

// Applies the file's values to the options of `command` that neither a flag nor the environment set.
// An unknown key, a key naming a flag that takes no value from files, or a value of the wrong type is an error
// naming the key and its line.
base::Result<void> apply_config_file(CLI::App& command, const std::string& path);

}  // namespace statefold::cli
