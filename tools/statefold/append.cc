#include <fstream>
#include <iostream>
#include <map>

#include "commands.h"
#include "config.h"
#include "engine/codec/codec.h"
#include "engine/log/log.h"

namespace statefold::cli {

Runner add_append(CLI::App& app) {
  auto* cmd = app.add_subcommand("append",
                                 "Append JSON-lines events (one event per line, see docs/events.md) to the topic. "
                                 "The whole input is validated first: nothing of an invalid file is sent");
  struct Args {
    std::string brokers = "127.0.0.1:9092";
    std::string topic{log::kDefaultTopic};
    std::string input = "-";
    bool continue_on_error = false;
    std::string encoding = "flatbuffers";
    std::string format = "text";
    int partitions = 4;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--brokers", a->brokers, "Kafka bootstrap servers")->capture_default_str()->envname("STATEFOLD_BROKERS");
  cmd->add_option("--topic", a->topic, "Event topic")->capture_default_str()->envname("STATEFOLD_TOPIC");
  cmd->add_option("input", a->input, "JSON-lines file, or - for standard input")->capture_default_str();
  cmd->add_flag("--continue-on-error", a->continue_on_error, "Send the valid lines even if some are invalid");
  cmd->add_option("--encoding", a->encoding, "Record encoding on the topic: flatbuffers (canonical) or json")
      ->check(CLI::IsMember({"flatbuffers", "json"}))->capture_default_str();
  cmd->add_option("--format", a->format, "text or json (json: one line per appended event)")
      ->check(CLI::IsMember({"text", "json"}))->capture_default_str();
  cmd->add_option("--partitions", a->partitions, "Partitions of the topic if append creates it")->capture_default_str();
  auto kafka_config = std::make_shared<std::string>();
  add_kafka_config_option(cmd, *kafka_config);
  return [a, kafka_config]() {
    if (!kafka_config_ok(*kafka_config, "append")) return kUsage;
    std::ifstream file;
    std::istream* in = &std::cin;
    if (a->input != "-") {
      file.open(a->input, std::ios::binary);
      if (!file) {
        std::cerr << "statefold append: cannot read " << a->input << "\n";
        return kFailure;
      }
      in = &file;
    }
    const std::string source = a->input == "-" ? "<stdin>" : a->input;
    struct Pending {
      std::uint64_t line;
      std::string session_id;
      std::vector<std::uint8_t> value;
      std::string event_id;
    };
    std::vector<Pending> pending;
    std::uint64_t line_no = 0;
    std::uint64_t invalid = 0;
    std::string line;
    while (std::getline(*in, line)) {
      ++line_no;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines are allowed
      auto encoded = codec::json_to_flatbuffers(line);
      if (!encoded) {
        ++invalid;
        std::cerr << source << ":" << line_no << ": " << encoded.error().message << "\n";
        continue;
      }
      auto event = codec::decode(*encoded, codec::Encoding::flatbuffers);
      if (!event) {
        ++invalid;
        std::cerr << source << ":" << line_no << ": " << event.error().message << "\n";
        continue;
      }
      Pending p{line_no, std::string(event->session_id()), {}, codec::event_id_to_string(event->id())};
      if (a->encoding == "json") {
        p.value.assign(line.begin(), line.end());
      } else {
        p.value = std::move(*encoded);
      }
      pending.push_back(std::move(p));
    }
    if (invalid > 0 && !a->continue_on_error) {
      std::cerr << "statefold append: " << invalid << " invalid line(s) in " << source
                << "; nothing was sent (use --continue-on-error to send the valid lines)\n";
      return kInvalidInput;
    }
    if (auto r = log::ensure_topic(a->brokers, a->topic, a->partitions); !r) {
      std::cerr << "statefold append: " << r.error().message << "\n";
      return kFailure;
    }
    log::ProducerOptions options;
    options.brokers = a->brokers;
    options.client_id = "statefold-append";
    auto producer = log::Producer::create(options);
    if (!producer) {
      std::cerr << "statefold append: " << producer.error().message << "\n";
      return kFailure;
    }
    std::vector<log::Delivery> deliveries(pending.size());
    const std::vector<log::Header> json_headers = {{"content-type", std::string(codec::kJsonContentType)}};
    const std::vector<log::Header> no_headers;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      auto sent = (*producer)->send(a->topic, pending[i].session_id, pending[i].value,
                                    a->encoding == "json" ? json_headers : no_headers,
                                    [&deliveries, i](const log::Delivery& d) { deliveries[i] = d; });
      if (!sent) {
        std::cerr << "statefold append: line " << pending[i].line << ": " << sent.error().message << "\n";
        return kFailure;
      }
    }
    auto flushed = (*producer)->flush(std::chrono::milliseconds(60000));
    std::map<std::int32_t, std::pair<std::int64_t, std::int64_t>> ranges;
    std::uint64_t failed = 0;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      const auto& d = deliveries[i];
      if (!d.error.empty() || d.offset < 0) {
        ++failed;
        std::cerr << source << ":" << pending[i].line << ": not appended: " << (d.error.empty() ? "no acknowledgement" : d.error) << "\n";
        continue;
      }
      auto [it, fresh] = ranges.try_emplace(d.partition, d.offset, d.offset);
      if (!fresh) {
        it->second.first = std::min(it->second.first, d.offset);
        it->second.second = std::max(it->second.second, d.offset);
      }
      if (a->format == "json") {
        std::cout << "{\"line\":" << pending[i].line << ",\"event_id\":\"" << pending[i].event_id
                  << "\",\"partition\":" << d.partition << ",\"offset\":" << d.offset << "}\n";
      }
    }
    if (a->format == "text") {
      std::cout << "appended " << (pending.size() - failed) << " event(s) from " << source << " to " << a->topic;
      if (invalid > 0) std::cout << " (" << invalid << " invalid line(s) skipped)";
      std::cout << "\n";
      for (const auto& [p, range] : ranges) {
        std::cout << "  partition " << p << ": offsets " << range.first << ".." << range.second << "\n";
      }
    }
    if (!flushed || failed > 0) {
      std::cerr << "statefold append: " << failed << " event(s) not acknowledged"
                << (flushed ? "" : ": " + flushed.error().message) << "\n";
      return kFailure;
    }
    return invalid > 0 ? kInvalidInput : kOk;
  };
}

}  // namespace statefold::cli
