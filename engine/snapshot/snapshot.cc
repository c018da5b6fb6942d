#include "engine/snapshot/snapshot.h"

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "engine/base/hex.h"
#include "engine/base/time.h"
#include "engine/fold/fold.h"
#include "engine/fold/layout.h"

namespace statefold::snapshot {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

base::Result<Manifest> read_manifest(const fs::path& dir) {
  std::ifstream in(dir / "manifest.json");
  if (!in) return base::make_error("no manifest.json in " + dir.string());
  std::stringstream text;
  text << in.rdbuf();
  json::error_code ec;
  json::value v = json::parse(text.str(), ec);
  if (ec || !v.is_object()) return base::make_error("unreadable manifest.json in " + dir.string());
  try {
    const auto& o = v.as_object();
    Manifest m;
    m.id = json::value_to<std::string>(o.at("id"));
    m.created_at = json::value_to<std::string>(o.at("created_at"));
    m.schema_version = json::value_to<std::uint64_t>(o.at("schema_version"));
    for (const auto& [p, off] : o.at("offsets").as_object()) m.offsets[std::stoi(std::string(p))] = off.to_number<std::int64_t>();
    m.store_hash = json::value_to<std::string>(o.at("store_hash"));
    m.sessions = json::value_to<std::uint64_t>(o.at("sessions"));
    m.events_applied = json::value_to<std::uint64_t>(o.at("events_applied"));
    m.path = dir.string();
    return m;
  } catch (const std::exception& e) {
    return base::make_error("manifest.json in " + dir.string() + ": " + e.what());
  }
}

}  // namespace

std::string snapshots_dir(const std::string& data_dir) { return (fs::path(data_dir) / "snapshots").string(); }

std::string manifest_json(const Manifest& m) {
  json::object offsets;
  for (const auto& [p, o] : m.offsets) offsets[std::to_string(p)] = o;
  json::object o{{"id", m.id},
                 {"created_at", m.created_at},
                 {"schema_version", m.schema_version},
                 {"offsets", std::move(offsets)},
                 {"store_hash", m.store_hash},
                 {"sessions", m.sessions},
                 {"events_applied", m.events_applied}};
  if (!m.path.empty()) o["path"] = m.path;
  return json::serialize(o);
}

base::Result<Manifest> create(const store::Store& store, const std::string& data_dir) {
  const fs::path root(snapshots_dir(data_dir));
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return base::make_error("cannot create " + root.string() + ": " + ec.message());
  // One snapshot at a time per process: the periodic thread and POST /v1/snapshots would otherwise pick the same id
  // and remove each other's partial copy.
  static std::mutex creating;
  std::lock_guard lock(creating);
  // Taken into a temporary name and renamed when complete, so a crash never leaves a half snapshot listed.
  std::string id = base::utc_now("%Y%m%dT%H%M%SZ");
  for (int n = 2; fs::exists(root / id); ++n) id = base::utc_now("%Y%m%dT%H%M%SZ") + "-" + std::to_string(n);
  const fs::path partial = root / (".partial-" + id);
  fs::remove_all(partial, ec);  // left by a crash in the middle of an earlier create
  fs::create_directories(partial, ec);
  if (auto r = store.checkpoint((partial / "store").string()); !r) {
    fs::remove_all(partial, ec);
    return r.error();
  }

  // Read the manifest's figures from the checkpoint itself: they are exactly the copy's.
  Manifest m;
  {
    store::Options options;
    options.path = (partial / "store").string();
    options.read_only = true;
    options.memory_budget_bytes = 16 << 20;
    auto copy = store::Store::open(options);
    if (!copy) return copy.error();
    const auto summary = fold::load_summary(**copy);
    m.offsets = (*copy)->offsets();
    m.store_hash = base::to_hex(summary.store_hash);
    m.sessions = summary.sessions;
    m.events_applied = summary.events_applied;
  }
  m.id = id;
  m.created_at = base::utc_now();
  m.schema_version = fold::kStateSchemaVersion;
  {
    std::ofstream out(partial / "manifest.json");
    out << manifest_json(m) << "\n";
    if (!out) return base::make_error("cannot write " + (partial / "manifest.json").string());
  }
  fs::rename(partial, root / id, ec);
  if (ec) return base::make_error("cannot complete snapshot " + id + ": " + ec.message());
  m.path = (root / id).string();
  return m;
}

std::vector<Manifest> list(const std::string& data_dir) {
  std::vector<Manifest> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(snapshots_dir(data_dir), ec)) {
    if (!entry.is_directory() || entry.path().filename().string().starts_with(".")) continue;
    if (auto m = read_manifest(entry.path())) out.push_back(std::move(*m));
  }
  std::sort(out.begin(), out.end(), [](const Manifest& a, const Manifest& b) { return a.id > b.id; });
  return out;
}

std::size_t prune(const std::string& data_dir, std::size_t keep) {
  auto all = list(data_dir);
  std::size_t deleted = 0;
  for (std::size_t i = keep; i < all.size(); ++i) {
    std::error_code ec;
    fs::remove_all(all[i].path, ec);
    if (!ec) ++deleted;
  }
  return deleted;
}

base::Result<Manifest> restore(const std::string& data_dir, const std::string& id) {
  const fs::path dir = fs::path(snapshots_dir(data_dir)) / id;
  auto m = read_manifest(dir);
  if (!m) return base::make_error("no snapshot " + id + " in " + snapshots_dir(data_dir));
  if (m->schema_version != fold::kStateSchemaVersion) {
    return base::make_error("snapshot " + id + " has state schema version " + std::to_string(m->schema_version) +
                            "; this build reads version " + std::to_string(fold::kStateSchemaVersion) +
                            ". Rebuild instead: statefold replay --data-dir NEW_DIR (the topic holds every event)");
  }
  const fs::path live = fs::path(data_dir) / "store";
  std::error_code ec;
  // Refuse while an engine has the store open: RocksDB holds its LOCK file.
  {
    store::Options options;
    options.path = live.string();
    options.create_if_missing = false;
    if (fs::exists(live)) {
      auto open = store::Store::open(options);
      if (!open) return base::make_error("cannot restore while the store is in use: " + open.error().message);
    }
  }
  const fs::path staging = fs::path(data_dir) / (".restore-" + id);
  fs::remove_all(staging, ec);
  fs::copy(dir / "store", staging, fs::copy_options::recursive, ec);
  if (ec) return base::make_error("cannot copy snapshot " + id + ": " + ec.message());
  if (fs::exists(live)) {
    // Never over an earlier one: two restores in the same second each keep what they replaced.
    fs::path aside = fs::path(data_dir) / ("store.before-restore-" + base::utc_now("%Y%m%dT%H%M%SZ"));
    for (int n = 2; fs::exists(aside); ++n) {
      aside = fs::path(data_dir) / ("store.before-restore-" + base::utc_now("%Y%m%dT%H%M%SZ") + "-" + std::to_string(n));
    }
    fs::rename(live, aside, ec);
    if (ec) {
      fs::remove_all(staging, ec);
      return base::make_error("cannot move the current store aside: " + ec.message());
    }
  }
  fs::rename(staging, live, ec);
  if (ec) return base::make_error("cannot put the snapshot in place: " + ec.message());
  return m;
}

}  // namespace statefold::snapshot
