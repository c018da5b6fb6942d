#include "config.h"

#include <toml++/toml.h>

namespace statefold::cli {

namespace {
std::string where(const std::string& path, const toml::source_region& source) {
  return path + ":" + std::to_string(source.begin.line);
}
}  // namespace

base::Result<void> apply_config_file(CLI::App& command, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return base::make_error(path + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    if (name == kUpstreamTable && node.is_table()) continue;  // the gateway's endpoints and routes: read by serve
    if (name == kAuthTable && node.is_table()) continue;      // API keys: read by serve
    const std::string at = where(path, node.source());
    CLI::Option* option = command.get_option_no_throw("--" + name);
    if (option == nullptr || name == "config") {
      return base::make_error(at + ": unknown key '" + name + "' (keys are the long flags of `statefold " +
                              command.get_name() + " --help`)");
    }
    std::string value;
    if (auto s = node.value<std::string>()) {
      value = *s;
    } else if (auto b = node.value_exact<bool>()) {
      value = *b ? "true" : "false";
    } else if (auto i = node.value_exact<std::int64_t>()) {
      value = std::to_string(*i);
    } else if (auto d = node.value_exact<double>()) {
      value = std::to_string(*d);
    } else {
      return base::make_error(at + ": key '" + name + "' needs a string, number or boolean");
    }
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

}  // namespace statefold::cli
