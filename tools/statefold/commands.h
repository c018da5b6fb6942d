// Subcommands of the statefold binary. Each registers its options on the app and returns the function that runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>

namespace statefold::cli {

// Exit codes, documented in docs/cli.md.
enum Exit : int {
  kOk = 0,
  kFailure = 1,       // the command could not do its job (Kafka unreachable, store failure...)
  kUsage = 2,         // bad flags
  kInvalidInput = 3,  // input that does not match the schema; nothing was written
  kNotFound = 4,      // the session (or store) asked for does not exist
  kMismatch = 5,      // verify or audit found state or history that does not match the log
};

using Runner = std::function<int()>;

// "HOST:PORT" -> (host, port); nullopt when it is not that.
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& address);

Runner add_serve(CLI::App& app);
Runner add_append(CLI::App& app);
Runner add_inspect(CLI::App& app);
Runner add_gen(CLI::App& app);
Runner add_replay(CLI::App& app);
Runner add_verify(CLI::App& app);
Runner add_audit(CLI::App& app);
Runner add_snapshot(CLI::App& app);
Runner add_fork(CLI::App& app);
Runner add_rerender(CLI::App& app);
Runner add_auth(CLI::App& app);

}  // namespace statefold::cli
