// fold_cost_bench: spec section 8, "per-event fold cost at 10,000 vs 10 items per session: ratio <= 1.2" (the
// promise of spec 3.7: appending the 10,000th message costs what the 10th does). Prints figures; not a test.
//
//   fold_cost_bench [--events 2000] [--reps 7] [--batch-sizes 1,500]
//
// In-process, against a real store (store::Store on RocksDB in a temporary directory):
// 1. Builds, for every (batch size, repetition), one session up to 10 items and one up to 10,000 items (an item is
//    an accepted event: SessionOpened, then user messages), committed in batches of 500 like the engine's.
// 2. Flushes and compacts the whole store to the bottom level, so the sessions are on disk as in a store that has
//    run for a while, not in the memtable; then reopens it (cold block cache, warmed up below).
// 3. Warms up on two separate sessions, then times folding + committing the next --events messages (identical
//    sizes: same text length, same session-id length) into each session, in batches of each --batch-size (one
//    fold::Folder and one Store::commit per batch, as runtime::Engine does). The short and the long session take
//    turns by chunks of at least 100 events (whole batches), the first alternating, so load from elsewhere on the
//    machine hits both alike; every repetition uses a fresh pair of sessions.
// 4. Prints ns/event per repetition (wall) and the thread's CPU ns/event, and the ratio long/short per repetition;
//    the figure is the median of those ratios.
//
// Decoding is done before the clock starts: it does not depend on the session, and leaving it out makes the ratio
// stricter. A session "at 10 items" grows during its --events messages; what is compared is the same K appends
// starting at 10 and at 10,000 items.
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <time.h>
#include <unistd.h>
#include <vector>

#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "engine/store/store.h"

using namespace statefold;  // NOLINT: a main file, not a header

namespace {

using Clock = std::chrono::steady_clock;
constexpr double kTargetRatio = 1.2;
constexpr std::size_t kBuildBatch = 500;
constexpr std::size_t kMinChunk = 100;  // events per turn when the two sessions alternate

struct Args {
  std::uint64_t events = 2000;  // timed messages per session and repetition
  std::uint64_t short_items = 10;
  std::uint64_t long_items = 10000;
  int reps = 7;
  std::vector<std::size_t> batch_sizes{1, 500};
  std::size_t text_bytes = 400;  // message text: about the workload's average
  std::string work_dir;
  std::uint64_t memory_budget_mb = 384;  // what runtime::Engine gives the store of its default 512 MB budget
  bool sync_writes = false;              // EngineOptions default
};

std::uint64_t splitmix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Deterministic JSON lines, all of one shape: only the ids, times and letters differ, never the lengths.
class Events {
 public:
  explicit Events(std::size_t text_bytes) : _text_bytes(text_bytes) {}

  std::string opened(const std::string& session) {
    return envelope(session, "SessionOpened") +
           R"({"model":"gpt-4o-mini","system_prompt":"You are a helpful assistant.","policy":)"
           R"({"token_budget":128000,"output_reserve":4096,"tokenizer":"o200k_base","provider":"openai"}}})";
  }

  std::string message(const std::string& session) {
    std::string text;
    text.reserve(_text_bytes);
    while (text.size() < _text_bytes) {
      const std::uint64_t r = splitmix(_counter * 1315423911ULL + text.size());
      const std::size_t word = 2 + r % 8;
      for (std::size_t i = 0; i < word && text.size() < _text_bytes; ++i) {
        text.push_back(static_cast<char>('a' + (r >> (8 + 5 * i)) % 26));
      }
      if (text.size() < _text_bytes) text.push_back(' ');
    }
    return envelope(session, "Message") + R"({"role":"user","content":[{"text":")" + text + R"("}]}})";
  }

 private:
  std::string envelope(const std::string& session, const char* type) {
    ++_counter;
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id;
    for (std::uint64_t word : {splitmix(_counter), splitmix(~_counter)}) {
      for (int shift = 60; shift >= 0; shift -= 4) id.push_back(kHex[(word >> shift) & 0xf]);
    }
    // Sixteen digits whatever the counter: microseconds from 2026-01-01.
    const std::uint64_t at = 1767225600000000ULL + _counter * 1000;
    return R"({"event_id":")" + id + R"(","session_id":")" + session + R"(","occurred_at_us":)" +
           std::to_string(at) + R"(,"source":"bench","payload_type":")" + type + R"(","payload":)";
  }

  std::size_t _text_bytes;
  std::uint64_t _counter = 0;
};

codec::Event decode(const std::string& json) {
  auto fb = codec::json_to_flatbuffers(json);
  if (!fb) throw std::runtime_error("bench event does not encode: " + fb.error().message);
  auto ev = codec::decode(*fb, codec::Encoding::flatbuffers);
  if (!ev) throw std::runtime_error("bench event does not decode: " + ev.error().message);
  return std::move(*ev);
}

// Folds `events` in batches of `batch`, one Folder and one commit per batch, as the engine does. Returns the
// number of events that were not accepted (there should be none).
std::uint64_t fold(store::Store& store, std::span<const codec::Event> events, std::size_t batch,
                   std::int64_t& offset) {
  std::uint64_t refused = 0;
  for (std::size_t at = 0; at < events.size(); at += batch) {
    const auto state = store.partition(0);
    fold::Folder folder(*state);
    const std::size_t end = std::min(events.size(), at + batch);
    for (std::size_t i = at; i < end; ++i) {
      if (folder.apply(events[i], {0, offset, 0}).outcome != fold::Outcome::accepted) ++refused;
      ++offset;
    }
    if (auto r = store.commit(0, folder.finish(), offset); !r) {
      throw std::runtime_error("commit failed: " + r.error().message);
    }
  }
  return refused;
}

std::unique_ptr<store::Store> open_store(const Args& a, const std::string& path) {
  store::Options options;
  options.path = path;
  options.partitions = 1;
  options.memory_budget_bytes = a.memory_budget_mb << 20;
  options.sync_writes = a.sync_writes;
  auto s = store::Store::open(options);
  if (!s) throw std::runtime_error(s.error().message);
  return std::move(*s);
}

// The store has no flush or compaction call (nothing in the engine needs one), so the closed store's directory
// is opened with RocksDB directly, with store.cc's table format, flushed and compacted to the bottom level.
void flush_and_compact(const std::string& path) {
  rocksdb::Options options;
  options.compression = rocksdb::kLZ4Compression;
  options.bottommost_compression = rocksdb::kZSTD;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10, false));
  table.format_version = 5;
  options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Every column family (the store keeps a partition's state in one each).
  std::vector<std::string> names;
  rocksdb::Status status = rocksdb::DB::ListColumnFamilies(options, path, &names);
  if (!status.ok()) throw std::runtime_error("rocksdb list column families: " + status.ToString());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const auto& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  status = rocksdb::DB::Open(options, path, descriptors, &handles, &raw);
  if (!status.ok()) throw std::runtime_error("rocksdb open for compaction: " + status.ToString());
  std::unique_ptr<rocksdb::DB> db(raw);
  for (auto* handle : handles) {
    if (status.ok()) status = db->Flush(rocksdb::FlushOptions(), handle);
    if (status.ok()) {
      rocksdb::CompactRangeOptions compact;
      compact.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      status = db->CompactRange(compact, handle, nullptr, nullptr);
    }
  }
  for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle);
  if (!status.ok()) throw std::runtime_error("rocksdb flush/compact: " + status.ToString());
  status = db->Close();
  if (!status.ok()) throw std::runtime_error("rocksdb close: " + status.ToString());
}

std::string sst_summary(const std::string& path) {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  for (const auto& entry : std::filesystem::directory_iterator(path)) {
    if (entry.path().extension() == ".sst") {
      ++files;
      bytes += entry.file_size();
    }
  }
  return std::to_string(files) + " SST file(s), " + std::to_string(bytes / 1000000) + " MB";
}

// CPU time of the calling thread: a cross-check that ignores time lost to other processes on a busy machine.
double thread_cpu_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Equal lengths for every id, so keys are the same size in both cases.
std::string session_name(char kind, std::size_t batch, int rep) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "cost-%c-b%04zu-r%02d", kind, batch, rep);
  return buf;
}

int run(const Args& a) {
  const std::filesystem::path work = a.work_dir.empty()
                                         ? std::filesystem::temp_directory_path() /
                                               ("statefold-fold-cost-" + std::to_string(::getpid()))
                                         : std::filesystem::path(a.work_dir);
  const std::string path = (work / "store").string();
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(work);
  std::printf("fold_cost_bench  %u hardware threads  store %s\n", std::thread::hardware_concurrency(), path.c_str());

  Events gen(a.text_bytes);
  std::int64_t offset = 0;
  std::uint64_t refused = 0;
  auto store = open_store(a, path);

  // ----- build -------------------------------------------------------------------------------------------------
  auto build = [&](const std::string& session, std::uint64_t items) {
    std::vector<codec::Event> events;
    events.reserve(items);
    events.push_back(decode(gen.opened(session)));
    while (events.size() < items) events.push_back(decode(gen.message(session)));
    refused += fold(*store, events, kBuildBatch, offset);
  };
  const auto t_build = Clock::now();
  std::uint64_t built = 0;
  for (char kind : {'s', 'l'}) {
    const std::uint64_t items = kind == 's' ? a.short_items : a.long_items;
    build(session_name(kind, 0, 0), items);  // the warm-up pair
    built += items;
    for (std::size_t b : a.batch_sizes) {
      for (int r = 1; r <= a.reps; ++r) {
        build(session_name(kind, b, r), items);
        built += items;
      }
    }
  }
  store.reset();
  flush_and_compact(path);
  store = open_store(a, path);
  std::printf("built %llu events: %zu measured session pairs and 1 warm-up pair at %llu and %llu items, in %.1f s; "
              "compacted to %s\n",
              static_cast<unsigned long long>(built), a.batch_sizes.size() * static_cast<std::size_t>(a.reps),
              static_cast<unsigned long long>(a.short_items), static_cast<unsigned long long>(a.long_items),
              std::chrono::duration<double>(Clock::now() - t_build).count(), sst_summary(path).c_str());

  // ----- timed events, decoded ahead ------------------------------------------------------------------------------
  auto messages = [&](const std::string& session, std::uint64_t n) {
    std::vector<codec::Event> events;
    events.reserve(n);
    for (std::uint64_t i = 0; i < n; ++i) events.push_back(decode(gen.message(session)));
    return events;
  };
  std::map<std::string, std::vector<codec::Event>> timed;
  for (std::size_t b : a.batch_sizes) {
    for (int r = 1; r <= a.reps; ++r) {
      for (char kind : {'s', 'l'}) timed.emplace(session_name(kind, b, r), messages(session_name(kind, b, r), a.events));
    }
  }

  // ----- warm-up: code paths, allocator, block cache, on sessions that are not measured ---------------------------
  for (std::size_t b : a.batch_sizes) {
    for (char kind : {'s', 'l'}) refused += fold(*store, messages(session_name(kind, 0, 0), a.events / 2), b, offset);
  }

  // ----- measure -------------------------------------------------------------------------------------------------
  // The two sessions take turns chunk by chunk (at least kMinChunk events, whole batches), the first one
  // alternating, so that a burst of load from elsewhere on the machine hits both alike.
  struct Figures {
    std::vector<double> short_ns, long_ns, short_cpu, long_cpu, ratio, cpu_ratio;  // one per repetition
  };
  std::map<std::size_t, Figures> figures;
  for (int r = 1; r <= a.reps; ++r) {
    for (std::size_t b : a.batch_sizes) {
      const std::size_t chunk = b * ((kMinChunk + b - 1) / b);
      const std::vector<codec::Event>* sessions[2] = {&timed.at(session_name('s', b, r)),
                                                      &timed.at(session_name('l', b, r))};
      double wall[2] = {0, 0};
      double cpu[2] = {0, 0};
      std::size_t turn = static_cast<std::size_t>(r);
      for (std::size_t at = 0; at < a.events; at += chunk, ++turn) {
        for (std::size_t j = 0; j < 2; ++j) {
          const std::size_t which = (turn + j) % 2;
          const std::span<const codec::Event> events(*sessions[which]);
          const auto part = events.subspan(at, std::min<std::size_t>(chunk, events.size() - at));
          const double cpu0 = thread_cpu_ns();
          const auto t0 = Clock::now();
          refused += fold(*store, part, b, offset);
          wall[which] += std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
          cpu[which] += thread_cpu_ns() - cpu0;
        }
      }
      const double n = static_cast<double>(a.events);
      Figures& f = figures[b];
      f.short_ns.push_back(wall[0] / n);
      f.long_ns.push_back(wall[1] / n);
      f.short_cpu.push_back(cpu[0] / n);
      f.long_cpu.push_back(cpu[1] / n);
      f.ratio.push_back(wall[1] / wall[0]);
      f.cpu_ratio.push_back(cpu[1] / cpu[0]);
    }
  }
  store.reset();
  if (a.work_dir.empty()) std::filesystem::remove_all(work);

  // ----- report --------------------------------------------------------------------------------------------------
  std::printf("\nper-event fold + commit cost at %llu vs %llu items per session (spec 8: ratio <= %.1f)\n",
              static_cast<unsigned long long>(a.long_items), static_cast<unsigned long long>(a.short_items),
              kTargetRatio);
  std::printf("%llu messages of %zu text bytes per session and repetition, %d repetitions, store memory budget %llu MB, "
              "sync_writes %s\n",
              static_cast<unsigned long long>(a.events), a.text_bytes, a.reps,
              static_cast<unsigned long long>(a.memory_budget_mb), a.sync_writes ? "on" : "off");
  std::printf("\nwall ns/event per repetition, their median, and the median of the thread's CPU ns/event\n");
  std::printf("%-6s %-7s", "batch", "items");
  for (int r = 1; r <= a.reps; ++r) std::printf(" %6s%-2d", "rep ", r);
  std::printf(" %8s %8s\n", "median", "CPU");
  for (std::size_t b : a.batch_sizes) {
    const Figures& f = figures[b];
    auto row = [&](const char* label, const std::vector<double>& v, const char* format, double cpu) {
      std::printf("%-6zu %-7s", b, label);
      for (double x : v) std::printf(format, x);
      std::printf(format, median(v));
      if (cpu >= 0) std::printf(format, cpu);
      std::printf("\n");
    };
    row(std::to_string(a.short_items).c_str(), f.short_ns, " %8.0f", median(f.short_cpu));
    row(std::to_string(a.long_items).c_str(), f.long_ns, " %8.0f", median(f.long_cpu));
    row("ratio", f.ratio, " %8.3f", median(f.cpu_ratio));
  }
  std::printf("\n%-48s %10s %10s %6s\n", "figure (median of the per-repetition ratios)", "measured", "target", "");
  for (std::size_t b : a.batch_sizes) {
    const Figures& f = figures[b];
    char name[96];
    std::snprintf(name, sizeof name, "ns/event %llu / %llu items, batch %zu",
                  static_cast<unsigned long long>(a.long_items), static_cast<unsigned long long>(a.short_items), b);
    const double ratio = median(f.ratio);
    std::printf("%-48s %10.3f %10s %6s\n", name, ratio, "<= 1.20", ratio <= kTargetRatio ? "PASS" : "MISS");
    std::printf("%-48s %10.3f\n", "  same in thread CPU time (cross-check)", median(f.cpu_ratio));
  }
  if (refused > 0) {
    std::fprintf(stderr, "fold_cost_bench: %llu event(s) were not accepted; the figures are not valid\n",
                 static_cast<unsigned long long>(refused));
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  CLI::App app{"statefold per-event fold cost at 10 vs 10,000 items per session (spec section 8). Prints figures."};
  app.add_option("--events", a.events, "Timed messages per session and repetition")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--short-items", a.short_items, "Items of the short session")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--long-items", a.long_items, "Items of the long session")->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--reps", a.reps, "Repetitions (median reported)")->capture_default_str()->check(CLI::Range(1, 50));
  app.add_option("--batch-sizes", a.batch_sizes, "Events per fold batch (Folder + commit)")->delimiter(',')
      ->capture_default_str();
  app.add_option("--text-bytes", a.text_bytes, "Bytes of message text")->capture_default_str();
  app.add_option("--work-dir", a.work_dir, "Directory for the store (default: a temporary directory, removed)");
  app.add_option("--memory-budget-mb", a.memory_budget_mb, "Store memory budget")->capture_default_str();
  app.add_flag("--sync-writes", a.sync_writes, "fsync every commit");
  CLI11_PARSE(app, argc, argv);
  for (std::size_t b : a.batch_sizes) {
    if (b == 0) {
      std::fprintf(stderr, "fold_cost_bench: --batch-sizes must be positive\n");
      return 2;
    }
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fold_cost_bench: %s\n", e.what());
    return 1;
  }
}
