// statefold: a stateful runtime for stateless model endpoints. See docs/cli.md.
#include <iostream>
#include <map>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"statefold: events on Kafka folded exactly once into RocksDB session state"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("statefold 0.1.0"));
  std::map<CLI::App*, statefold::cli::Runner> runners;
  auto add = [&](auto adder) {
    auto before = app.get_subcommands([](CLI::App*) { return true; });
    auto runner = adder(app);
    auto after = app.get_subcommands([](CLI::App*) { return true; });
    runners[after.back()] = std::move(runner);
  };
  add(statefold::cli::add_serve);
  add(statefold::cli::add_append);
  add(statefold::cli::add_inspect);
  add(statefold::cli::add_gen);
  add(statefold::cli::add_replay);
  add(statefold::cli::add_verify);
  add(statefold::cli::add_audit);
  add(statefold::cli::add_snapshot);
  add(statefold::cli::add_fork);
  add(statefold::cli::add_rerender);
  add(statefold::cli::add_auth);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : statefold::cli::kUsage;
  }
  for (auto& [sub, runner] : runners) {
    if (sub->parsed()) {
      try {
        return runner();
      } catch (const std::exception& e) {
        std::cerr << "statefold " << sub->get_name() << ": " << e.what() << "\n";
        return statefold::cli::kFailure;
      }
    }
  }
  return statefold::cli::kUsage;
}
