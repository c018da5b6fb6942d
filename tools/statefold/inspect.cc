#include <iostream>

#include "commands.h"
#include "engine/base/time.h"
#include "engine/fold/as_of.h"
#include "engine/store/store.h"
#include "engine/view/view.h"

namespace statefold::cli {

Runner add_inspect(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "inspect", "Print one session's state, or the store's summary. Read-only: safe on a running engine's data dir");
  struct Args {
    std::string data_dir;
    std::string session;
    bool summary = false;
    std::string format = "text";
    std::uint64_t messages = 20;
    std::uint64_t at_version = 0;
    std::string at_time;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--data-dir", a->data_dir, "The engine's data directory")->required();
  auto* session = cmd->add_option("--session", a->session, "Session id to show");
  auto* summary = cmd->add_flag("--summary", a->summary, "Show the store summary: counts, offsets, store hash");
  session->excludes(summary);
  cmd->add_option("--format", a->format, "text or json")->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->add_option("--messages", a->messages, "How many of the newest messages to show (0: none)")->capture_default_str();
  auto* at_version = cmd->add_option("--at-version", a->at_version,
                                     "Show the session as it was at this version (time travel)");
  auto* at_time = cmd->add_option("--at-time", a->at_time,
                                  "Show the session as it was at this time: RFC 3339 or ms since the epoch, compared "
                                  "with the Kafka record times of its events");
  at_version->excludes(at_time)->needs(session);
  at_time->needs(session);
  return [a]() {
    if (a->session.empty() && !a->summary) {
      std::cerr << "statefold inspect: give --session ID or --summary\n";
      return kUsage;
    }
    store::Options options;
    options.path = a->data_dir + "/store";
    options.read_only = true;
    options.memory_budget_bytes = 64ull << 20;
    auto store = store::Store::open(options);
    if (!store) {
      std::cerr << "statefold inspect: " << store.error().message << "\n";
      return kNotFound;
    }
    const auto& reader = **store;
    if (a->summary) {
      auto offsets = (*store)->offsets();
      std::cout << (a->format == "json" ? view::summary_json(reader, offsets) + "\n" : view::summary_text(reader, offsets));
      return kOk;
    }
    view::SessionOptions session_options{a->messages};
    if (!a->at_time.empty() || a->at_version > 0) {
      std::uint64_t version = a->at_version;
      if (!a->at_time.empty()) {
        auto ms = base::parse_time_ms(a->at_time);
        if (!ms) {
          std::cerr << "statefold inspect: --at-time: " << ms.error().message << "\n";
          return kUsage;
        }
        auto found = fold::version_at_time(reader, a->session, *ms);
        if (!found) {
          std::cerr << "statefold inspect: no session " << a->session << " in " << a->data_dir << "\n";
          return kNotFound;
        }
        if (*found == 0) {
          std::cerr << "statefold inspect: session " << a->session << " had no events at " << a->at_time << "\n";
          return kNotFound;
        }
        version = *found;
      }
      auto past = a->format == "json" ? view::session_json_at(reader, a->session, version, session_options)
                                      : view::session_text_at(reader, a->session, version, session_options);
      if (!past) {
        std::cerr << "statefold inspect: " << past.error().message << "\n";
        return kNotFound;
      }
      std::cout << *past << (a->format == "json" ? "\n" : "");
      return kOk;
    }
    auto shown = a->format == "json" ? view::session_json(reader, a->session, session_options)
                                     : view::session_text(reader, a->session, session_options);
    if (!shown) {
      std::cerr << "statefold inspect: no session " << a->session << " in " << a->data_dir << "\n";
      return kNotFound;
    }
    std::cout << *shown << (a->format == "json" ? "\n" : "");
    return kOk;
  };
}

}  // namespace statefold::cli
