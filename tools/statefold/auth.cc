// statefold auth new-key: a new API key for serve's [[auth.keys]] (docs/security.md).
#include <iostream>
#include <sstream>

#include "commands.h"
#include "engine/auth/auth.h"

namespace statefold::cli {

Runner add_auth(CLI::App& app) {
  auto* cmd = app.add_subcommand("auth", "API keys for serve (docs/security.md)");
  cmd->require_subcommand(1);
  auto* make = cmd->add_subcommand(
      "new-key",
      "Print a new random API key once, and the [[auth.keys]] lines for serve's --config file.\n"
      "The file keeps only the key's SHA-256 digest: give the key to its user, it cannot be shown again.");
  struct Args {
    std::string name;
    std::string tenant;
    std::vector<std::string> roles;
    double requests_per_second = 0;
    std::uint32_t max_concurrent_turns = 0;
    std::uint64_t token_budget = 0;
    std::string budget_period = "day";
  };
  auto a = std::make_shared<Args>();
  make->add_option("--name", a->name, "Who or what the key is for; logs and refusals name it")->required();
  make->add_option("--tenant", a->tenant,
                   "The tenant whose sessions (named TENANT/...) the key may touch; none: every session (an "
                   "operator's key)")
      ->check([](const std::string& t) {
        return auth::valid_tenant(t) ? std::string() : std::string("expected 1..64 of A-Z a-z 0-9 . _ -");
      });
  make->add_option("--roles", a->roles, "read, write, chat, admin (comma-separated)")
      ->required()
      ->delimiter(',')
      ->check(CLI::IsMember({"read", "write", "chat", "admin"}));
  make->add_option("--requests-per-second", a->requests_per_second, "Rate limit of the key (0: none)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  make->add_option("--max-concurrent-turns", a->max_concurrent_turns, "Gateway turns of the key at once (0: no limit)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  make->add_option("--token-budget", a->token_budget,
                   "Input + output tokens per --budget-period, counted from the receipts (0: no budget)")
      ->capture_default_str();
  make->add_option("--budget-period", a->budget_period, "day or month (UTC)")
      ->check(CLI::IsMember({"day", "month"}))
      ->capture_default_str();
  return [a, make]() {
    if (!make->parsed()) return static_cast<int>(kUsage);
    if (a->name.find_first_of("\"\\\n") != std::string::npos) {
      std::cerr << "statefold auth new-key: --name: no quotes, backslashes or newlines\n";
      return static_cast<int>(kUsage);
    }
    const auth::NewKey made = auth::new_key();
    std::ostringstream roles;
    for (std::size_t i = 0; i < a->roles.size(); ++i) roles << (i ? ", " : "") << '"' << a->roles[i] << '"';
    // The key on stdout's first line alone, so a script can take it with `head -1`; the config lines after it.
    std::cout << made.key << "\n"
              << "\n# Add to serve's --config file (the key above is not stored anywhere):\n"
              << "[[auth.keys]]\n"
              << "name = \"" << a->name << "\"\n"
              << "digest = \"" << made.digest << "\"\n";
    if (!a->tenant.empty()) std::cout << "tenant = \"" << a->tenant << "\"\n";
    std::cout << "roles = [" << roles.str() << "]\n";
    if (a->requests_per_second > 0) std::cout << "requests_per_second = " << a->requests_per_second << "\n";
    if (a->max_concurrent_turns > 0) std::cout << "max_concurrent_turns = " << a->max_concurrent_turns << "\n";
    if (a->token_budget > 0) {
      std::cout << "token_budget = " << a->token_budget << "\nbudget_period = \"" << a->budget_period << "\"\n";
    }
    return static_cast<int>(kOk);
  };
}

}  // namespace statefold::cli
