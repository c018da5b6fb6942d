#include <cstdio>
#include <fstream>
#include <iostream>

#include "commands.h"
#include "engine/workload/workload.h"

namespace statefold::cli {

Runner add_gen(CLI::App& app) {
  auto* cmd = app.add_subcommand("gen", "Write a realistic, deterministic JSON-lines workload (for demos, tests, benchmarks)");
  auto options = std::make_shared<workload::Options>();
  auto output = std::make_shared<std::string>("-");
  auto prefix = std::make_shared<std::string>("session-");
  cmd->add_option("--sessions", options->sessions, "Number of sessions")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--events", options->events, "Number of events (lines) in all")->capture_default_str();
  cmd->add_option("--seed", options->seed, "Seed: the same seed gives the same bytes")->capture_default_str();
  cmd->add_option("--duplicate-rate", options->duplicate_rate, "Share of events re-sent verbatim (duplicates)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--stale-rate", options->stale_rate, "Share of events with a stale expected_version (rejected)")
      ->capture_default_str()->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--session-prefix", *prefix, "Prefix of the generated session ids")->capture_default_str();
  cmd->add_option("-o,--output", *output, "Output file, - for standard output")->capture_default_str();
  return [options, output, prefix]() {
    options->session_prefix = *prefix;
    std::ofstream file;
    std::ostream* out = &std::cout;
    if (*output != "-") {
      file.open(*output, std::ios::binary | std::ios::trunc);
      if (!file) {
        std::cerr << "statefold gen: cannot write " << *output << "\n";
        return kFailure;
      }
      out = &file;
    }
    std::string buffer;
    buffer.reserve(1 << 20);
    workload::generate(*options, [&](std::string_view line) {
      buffer.append(line).push_back('\n');
      if (buffer.size() >= (1 << 20) - 4096) {
        out->write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
        buffer.clear();
      }
    });
    out->write(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    out->flush();
    if (!*out) {
      std::cerr << "statefold gen: write failed\n";
      return kFailure;
    }
    return kOk;
  };
}

}  // namespace statefold::cli
