// `statefold serve --embedded-kafka`: librdkafka's in-process mock cluster instead of a broker, the try-out path
// that needs no Java. It must say loudly that it keeps nothing, tell where its cluster listens (brokers=HOST:PORT),
// take appends there, fold them, and stop cleanly on SIGTERM. No broker needed: label unit.
#include <gtest/gtest.h>

#include <csignal>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "engine/workload/workload.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

class EmbeddedKafka : public ProcessTest {};

TEST_F(EmbeddedKafka, FoldsAppendsToItsInProcessClusterAndWarnsThatItKeepsNothing) {
  constexpr std::uint64_t kEvents = 2000;
  const std::string data = data_dir("store");
  ServeOptions options;
  options.embedded_kafka = true;
  options.data_dir = data;
  Serve& serve = start_serve(options);

  // The warning line carries the mock cluster's address.
  const std::regex brokers_field(R"(brokers=([^\s:]+:[0-9]+))");
  std::string warning;
  std::string address;
  const bool announced = wait_until(
      [&] {
        std::istringstream in(serve.log());
        for (std::string line; std::getline(in, line);) {
          std::smatch m;
          if (line.find("EMBEDDED") != std::string::npos && std::regex_search(line, m, brokers_field)) {
            warning = line;
            address = m[1];
            return true;
          }
        }
        return !serve.running();
      },
      seconds(60));
  ASSERT_TRUE(announced && !address.empty()) << "no `brokers=HOST:PORT` line from serve --embedded-kafka; log:\n"
                                              << serve.log();
  std::printf("embedded_kafka_test: %s\n", warning.c_str());
  EXPECT_NE(warning.find("WARN"), std::string::npos) << warning;
  const std::regex keeps_nothing("lost when|keeps nothing|nothing is kept|not kept", std::regex::icase);
  EXPECT_TRUE(std::regex_search(warning, keeps_nothing)) << "the warning must say nothing is kept: " << warning;

  workload::Options workload_options;
  workload_options.sessions = 20;
  workload_options.events = kEvents;
  workload_options.seed = 99;
  std::vector<std::string> lines;
  const workload::Stats stats =
      workload::generate(workload_options, [&](std::string_view line) { lines.emplace_back(line); });
  const std::string input = path("events.jsonl");
  write_lines(input, lines);
  auto appended = statefold({"append", "--brokers", address, input}, minutes(3));
  ASSERT_TRUE(appended.status.exited_with(0)) << appended.status.describe() << "\n" << appended.err;

  auto summary = wait_for_summary(data, [&](const Summary& s) { return s.total() >= kEvents; }, minutes(3), &serve);
  ASSERT_TRUE(summary);
  const ExitStatus stopped = serve.stop();
  EXPECT_TRUE(stopped.exited_with(0)) << stopped.describe();

  summary = inspect_summary(data);
  ASSERT_TRUE(summary);
  ReferenceFold reference;
  reference.fold(lines);
  EXPECT_EQ(summary->total(), kEvents);
  EXPECT_EQ(summary->events_applied, stats.accepted);
  EXPECT_EQ(summary->duplicates, stats.duplicates);
  EXPECT_EQ(summary->rejections, stats.stale);
  EXPECT_EQ(summary->sessions, stats.sessions_opened);
  EXPECT_EQ(summary->store_hash, reference.store_hash());
}

}  // namespace
}  // namespace statefold::testing
