#include "config.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <iostream>

namespace statefold::cli {

namespace {
std::string where(const std::string& path, const toml::source_region& source) {
  return path + ":" + std::to_string(source.begin.line);
}

// "file:line: what", or "file: what" when the file could not be read at all.
std::string parse_error_text(const std::string& path, const toml::parse_error& e) {
  const auto line = e.source().begin.line;
  return path + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + std::string(e.description());
}

// A string, boolean or integer (and a float when `floats`) as the text a flag or a librdkafka property takes.
std::optional<std::string> scalar_text(const toml::node& node, bool floats) {
  if (auto s = node.value_exact<std::string>()) return *s;
  if (auto b = node.value_exact<bool>()) return std::string(*b ? "true" : "false");
  if (auto i = node.value_exact<std::int64_t>()) return std::to_string(*i);
  if (auto d = node.value_exact<double>(); d && floats) return std::to_string(*d);
  return std::nullopt;
}
}  // namespace

base::Result<void> apply_config_file(CLI::App& command, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return base::make_error(parse_error_text(path, e));
  }
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name == kUpstreamTable && node.is_table()) continue;  // the gateway's endpoints and routes: read by serve
    if (name == kAuthTable && node.is_table()) continue;      // API keys: read by serve
    if (name == kKafkaTable && node.is_table()) continue;     // Kafka client properties: read_kafka_table
    const std::string at = where(path, node.source());
    CLI::Option* option = command.get_option_no_throw("--" + name);
    if (option == nullptr || name == "config") {
      return base::make_error(at + ": unknown key '" + name + "' (keys are the long flags of `statefold " +
                              command.get_name() + " --help`)");
    }
    auto text = scalar_text(node, true);
    if (!text) return base::make_error(at + ": key '" + name + "' needs a string, number or boolean");
    const std::string& value = *text;
    if (option->count() > 0) continue;  // a flag or the environment wins over the file
    try {
      option->add_result(value);
      option->run_callback();
    } catch (const CLI::Error& e) {
      return base::make_error(at + ": " + name + ": " + e.what());
    }
  }
  return {};
}

base::Result<log::Properties> read_kafka_table(const std::string& path) {
  toml::table document;
  try {
    document = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return base::make_error(parse_error_text(path, e));
  }
  log::Properties properties;
  const toml::node* table_node = document.get(kKafkaTable);
  if (table_node == nullptr) return properties;
  const toml::table* table = table_node->as_table();
  if (table == nullptr) return base::make_error(where(path, table_node->source()) + ": kafka: expected a table");
  for (const auto& [key, node] : *table) {
    const std::string name(key.str());
    const std::string at = where(path, node.source());
    if (name == "from_env") {
      const toml::table* from_env = node.as_table();
      if (from_env == nullptr) {
        return base::make_error(at + ": kafka.from_env: expected a table of property = \"ENVIRONMENT_VARIABLE\"");
      }
      for (const auto& [property_key, variable_node] : *from_env) {
        const std::string property(property_key.str());
        const std::string variable_at = where(path, variable_node.source()) + ": kafka.from_env." + property;
        auto variable = variable_node.value_exact<std::string>();
        if (!variable || variable->empty()) return base::make_error(variable_at + ": expected a variable's name");
        const char* value = std::getenv(variable->c_str());
        if (value == nullptr || *value == '\0') {
          return base::make_error(variable_at + ": the environment variable " + *variable + " is not set");
        }
        properties.emplace_back(property, value);
      }
      continue;
    }
    if (log::is_secret_property(name)) {
      return base::make_error(at + ": kafka." + name +
                              ": secrets do not go in the file: put it in an environment variable and name it in "
                              "[kafka.from_env] (\"" +
                              name + "\" = \"STATEFOLD_KAFKA_...\")");
    }
    auto value = scalar_text(node, false);
    if (!value) return base::make_error(at + ": kafka." + name + ": expected a string, integer or boolean");
    if (name == "bootstrap.servers" || name == "group.id" || name == "transactional.id") {
      return base::make_error(at + ": kafka." + name + ": set by statefold (use --brokers or --group)");
    }
    properties.emplace_back(name, std::move(*value));
  }
  return properties;
}

CLI::Option* add_kafka_config_option(CLI::App* command, std::string& path) {
  return command
      ->add_option("--config", path,
                   "TOML file whose [kafka] table sets librdkafka properties (TLS, SASL) for every Kafka client; "
                   "serve's file will do (docs/security.md)")
      ->envname("STATEFOLD_CONFIG");
}

base::Result<void> use_kafka_config(const std::string& path) {
  if (path.empty()) return {};
  auto properties = read_kafka_table(path);
  if (!properties) return properties.error();
  log::set_client_properties(std::move(*properties));
  return {};
}

bool kafka_config_ok(const std::string& path, std::string_view command) {
  auto configured = use_kafka_config(path);
  if (!configured) std::cerr << "statefold " << command << ": " << configured.error().message << "\n";
  return configured.ok();
}

}  // namespace statefold::cli
