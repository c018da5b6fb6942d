#include <iostream>

#include "commands.h"
#include "config.h"
#include "connectors/audit/rerender.h"
#include "connectors/providers/provider.h"
#include "engine/store/store.h"

namespace statefold::cli {

Runner add_rerender(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "rerender", "Counterfactual re-rendering: every past turn of a session (each inference receipt) rendered again "
                  "as it was sent and as it would have been sent under another context policy or provider. Prints "
                  "per turn the token counts, what would have been cut, the prefix a provider's cache could reuse, "
                  "and the history messages that differ from what was sent. No model is called; nothing is written");
  struct Args {
    std::string data_dir;
    std::string session;
    std::string policy_file;
    std::optional<std::uint32_t> token_budget;
    std::optional<std::uint32_t> output_reserve;
    std::optional<std::uint32_t> cut_percent;
    std::optional<std::uint32_t> memory_percent;
    std::string provider;
    std::string format = "text";
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--data-dir", a->data_dir, "The engine's data directory (read-only)")->required();
  cmd->add_option("--session", a->session, "The session whose turns to re-render")->required();
  cmd->add_option("--policy", a->policy_file,
                  "A TOML file of the counterfactual, its keys named as the flags below (token-budget = 16000, "
                  "provider = \"anthropic\"); flags win over it")
      ->check(CLI::ExistingFile);
  cmd->add_option("--token-budget", a->token_budget, "Context window: input plus output tokens")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--output-reserve", a->output_reserve, "Tokens kept free for the reply");
  cmd->add_option("--cut-percent", a->cut_percent, "Share of the history budget a cut leaves free (0 = sliding window)")
      ->check(CLI::Range(0, 90));
  cmd->add_option("--memory-percent", a->memory_percent, "Share of the input budget unpinned memory may use")
      ->check(CLI::Range(0, 100));
  cmd->add_option("--provider", a->provider,
                  "Render for this provider instead (" + context::provider_names() + ")");
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  return [a, cmd]() {
    if (!a->policy_file.empty()) {
      if (auto applied = apply_config_file(*cmd, a->policy_file); !applied) {
        std::cerr << "statefold rerender: " << applied.error().message << "\n";
        return kUsage;
      }
    }
    audit::Counterfactual what_if;
    what_if.token_budget = a->token_budget;
    what_if.output_reserve = a->output_reserve;
    what_if.cut_percent = a->cut_percent;
    what_if.memory_percent = a->memory_percent;
    if (!a->provider.empty()) {
      const providers::Provider* provider = providers::find(a->provider);
      if (provider == nullptr) {
        std::cerr << "statefold rerender: unknown provider " << a->provider << "\n";
        return kUsage;
      }
      what_if.provider = provider->id();
    }
    store::Options options;
    options.path = a->data_dir + "/store";
    options.read_only = true;
    auto store = store::Store::open(options);
    if (!store) {
      std::cerr << "statefold rerender: " << store.error().message << "\n";
      return kNotFound;
    }
    auto report = audit::rerender_session(**store, a->session, what_if);
    if (!report) {
      std::cerr << "statefold rerender: " << report.error().message << "\n";
      return kFailure;
    }
    if (!*report) {
      std::cerr << "statefold rerender: no session " << a->session << " in " << a->data_dir << "\n";
      return kNotFound;
    }
    std::cout << (a->format == "json" ? audit::to_json(**report) : audit::to_text(**report));
    return kOk;
  };
}

}  // namespace statefold::cli
