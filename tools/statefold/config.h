// Settings files for subcommands: a TOML file whose keys are the subcommand's long flag names
// (`brokers = "127.0.0.1:9092"`, `memory-budget-mb = 512`). Precedence: defaults < file < STATEFOLD_* environment
// < flags. Call after CLI11 parsed the command line (which also applied the environment).
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "engine/base/result.h"

namespace statefold::cli {

// The table of the same file that configures the gateway's upstream endpoints and routes (docs/configuration.md):
// not flags, so apply_config_file leaves it to upstream::load_routing_toml.
inline constexpr std::string_view kUpstreamTable = "upstream";
// The table of API keys and their roles (auth::parse_config, docs/security.md), read by serve.
inline constexpr std::string_view kAuthTable = "auth";

// Applies the file's values to the options of `command` that neither a flag nor the environment set.
// An unknown key, a key naming a flag that takes no value from files, or a value of the wrong type is an error
// naming the key and its line.
base::Result<void> apply_config_file(CLI::App& command, const std::string& path);

}  // namespace statefold::cli
