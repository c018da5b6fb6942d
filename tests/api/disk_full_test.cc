// A full disk (issue 9, defect 3; spec section 10): serve's data dir on a small tmpfs the test mounts (it needs
// root, and is skipped with a message otherwise), filled up to below the disk reserve while serve runs. Folding
// pauses before RocksDB fails (before the fix RocksDB aborted serve on an assertion, at every restart too): writes
// get 503 with Retry-After, /readyz 503 naming the disk, reads go on, and events producers send meanwhile wait on
// the log. Once space returns, folding resumes by itself and each of those events is folded exactly once.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "api/http_client.h"
#include "support/cluster.h"

namespace statefold::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

std::string message(const std::string& text) {
  return R"({"payload_type":"Message","payload":{"role":"user","content":[{"text":")" + text + R"("}]}})";
}

// An event in its JSON form with its own id, as a producer outside statefold writes it.
std::string produced_event(std::uint64_t id, const std::string& session, const std::string& payload_type,
                           const std::string& payload) {
  char hex[33];
  std::snprintf(hex, sizeof hex, "%032llx", static_cast<unsigned long long>(id));
  return R"({"event_id":")" + std::string(hex) + R"(","session_id":")" + session + R"(","occurred_at_us":)" +
         std::to_string(1767225600000000ull + id) + R"(,"payload_type":")" + payload_type + R"(","payload":)" +
         payload + "}";
}

std::uint64_t free_bytes(const std::string& dir) {
  struct statvfs s {};
  if (::statvfs(dir.c_str(), &s) != 0) return 0;
  return static_cast<std::uint64_t>(s.f_bavail) * s.f_frsize;
}

// A tmpfs of its own, unmounted however the test ends.
class SmallDisk {
 public:
  SmallDisk(std::string dir, std::string size) : _dir(std::move(dir)) {
    std::filesystem::create_directories(_dir);
    const std::string options = "size=" + size;
    _mounted = ::mount("tmpfs", _dir.c_str(), "tmpfs", 0, options.c_str()) == 0;
    if (!_mounted) _why = std::string("mount tmpfs: ") + std::strerror(errno);
  }
  ~SmallDisk() {
    if (_mounted) ::umount2(_dir.c_str(), MNT_DETACH);
  }
  bool mounted() const { return _mounted; }
  const std::string& why() const { return _why; }

 private:
  std::string _dir;
  bool _mounted = false;
  std::string _why;
};

class DiskFullTest : public ClusterTest {};

TEST_F(DiskFullTest, FoldingPausesBeforeTheDiskFillsAndResumesWhenSpaceReturns) {
  SmallDisk disk(path("disk"), "192m");
  if (!disk.mounted()) GTEST_SKIP() << "needs root to mount a small tmpfs (" << disk.why() << ")";
  const std::string topic = unique_name("disk");
  const std::uint16_t http_port = free_port();
  ServeOptions options;
  options.brokers = brokers();
  options.topic = topic;
  options.dead_letter_topic = topic + ".dlq";
  options.group = topic;
  options.data_dir = path("disk") + "/store";
  options.http_address = "127.0.0.1:" + std::to_string(http_port);
  options.extra = {"--partitions", "1", "--disk-reserve-mb", "48", "--memory-budget-mb", "64",
                   "--append-timeout-ms", "5000"};
  Serve& serve = start_serve(options);
  ASSERT_TRUE(wait_until([&] { return !serve.running() || contains(serve.log(), "HTTP API listening"); },
                         std::chrono::minutes(2), milliseconds(20)));
  HttpClient http("127.0.0.1", http_port);
  ASSERT_TRUE(wait_until([&] { return http.get("/readyz").status == 200; }, std::chrono::minutes(2), milliseconds(50)))
      << tail(serve.log_path());
  ASSERT_EQ(http.post("/v1/sessions/kept/events", message("before the disk filled")).status, 200);

  // Another process fills the disk to 24 MiB free, below the 48 MiB reserve.
  const std::string filler = path("disk") + "/filler";
  {
    const std::uint64_t available = free_bytes(path("disk"));
    ASSERT_GT(available, 64ull << 20);
    const int fd = ::open(filler.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::posix_fallocate(fd, 0, static_cast<off_t>(available - (24ull << 20))), 0);
    ::close(fd);
  }

  HttpReply ready;
  ASSERT_TRUE(wait_until([&] { return (ready = http.get("/readyz")).status == 503; }, seconds(10), milliseconds(50)))
      << "/readyz with the disk below the reserve: " << ready.describe();
  EXPECT_TRUE(contains(ready.body, "disk reserve")) << ready.describe();
  HttpReply refused = http.post("/v1/sessions/kept/events", message("while the disk is full"));
  EXPECT_EQ(refused.status, 503) << refused.describe();
  EXPECT_TRUE(refused.headers.contains("retry-after")) << refused.describe();
  EXPECT_TRUE(contains(refused.body, "disk")) << refused.describe();
  // Reads go on.
  HttpReply kept = http.get("/v1/sessions/kept");
  ASSERT_EQ(kept.status, 200) << kept.describe();
  EXPECT_EQ(kept.json().at("version").to_number<std::int64_t>(), 1);

  // A producer writes straight to Kafka meanwhile: the events wait on the log, unfolded.
  const std::vector<log::Header> json_form = {{"content-type", "application/json"}};
  const std::string late = "late";
  produce(brokers(), topic,
          {RawRecord{late, produced_event(1, late, "SessionOpened", R"({"model":"echo-1"})"), json_form, 0},
           RawRecord{late, produced_event(2, late, "Message", R"({"role":"user","content":[{"text":"hi"}]})"),
                     json_form, 0}});
  std::this_thread::sleep_for(seconds(2));
  EXPECT_EQ(http.get("/v1/sessions/late").status, 404) << "folded although the disk was below the reserve";
  EXPECT_TRUE(serve.running()) << tail(serve.log_path());
  EXPECT_TRUE(contains(serve.log(), "disk nearly full: folding paused")) << tail(serve.log_path());

  // Space returns: folding resumes by itself, each waiting event folded once, and writes work again.
  const auto freed = std::chrono::steady_clock::now();
  ASSERT_EQ(::unlink(filler.c_str()), 0);
  HttpReply late_state;
  ASSERT_TRUE(wait_until([&] { return (late_state = http.get("/v1/sessions/late")).status == 200; }, seconds(30),
                         milliseconds(50)))
      << late_state.describe() << "\n" << tail(serve.log_path());
  std::printf("disk full: folding resumed %.2f s after space returned\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - freed).count());
  EXPECT_EQ(late_state.json().at("version").to_number<std::int64_t>(), 2) << late_state.describe();
  EXPECT_TRUE(wait_until([&] { return http.get("/readyz").status == 200; }, seconds(30), milliseconds(100)));
  HttpReply after = http.post("/v1/sessions/kept/events", message("after space returned"));
  EXPECT_EQ(after.status, 200) << after.describe();
  EXPECT_EQ(http.get("/v1/sessions/kept").json().at("version").to_number<std::int64_t>(), 2);
  EXPECT_TRUE(contains(serve.log(), "disk space is back: folding resumes"));
  EXPECT_TRUE(serve.stop().exited_with(0)) << tail(serve.log_path());
}

}  // namespace
}  // namespace statefold::testing
