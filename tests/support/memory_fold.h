// Folds JSON event lines into a fold::MemoryKv in-process, one batch per call, at made-up log positions (partition
// 0, consecutive offsets): the state views, forks and audits read in unit tests, with no broker and no RocksDB.
//
//   statefold::testing::MemoryFold f;
//   f.fold({testing::opened(1, "s"), testing::message(2, "s", "user", "hi")});
//   auto json = view::session_json(f.kv, "s");
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "engine/codec/codec.h"
#include "engine/fold/fold.h"

namespace statefold::testing {

inline std::string event_id_hex(std::uint64_t n) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%032llx", static_cast<unsigned long long>(n));
  return buf;
}

// An event as JSON; `extra` goes in the envelope (e.g. R"("expected_version":3,)").
inline std::string event(std::uint64_t id, const std::string& session, const std::string& type,
                         const std::string& payload, const std::string& extra = "") {
  return R"({"event_id":")" + event_id_hex(id) + R"(","session_id":")" + session + R"(",)" + extra +
         R"("occurred_at_us":)" + std::to_string(1767225600000000ull + id) + R"(,"payload_type":")" + type +
         R"(","payload":)" + payload + "}";
}

inline std::string opened(std::uint64_t id, const std::string& session) {
  return event(id, session, "SessionOpened", R"({"model":"m","system_prompt":"Be brief."})");
}

inline std::string message(std::uint64_t id, const std::string& session, const std::string& role,
                           const std::string& text) {
  return event(id, session, "Message", R"({"role":")" + role + R"(","content":[{"text":")" + text + R"("}]})");
}

inline std::string memory_set(std::uint64_t id, const std::string& session, const std::string& label,
                              const std::string& value) {
  return event(id, session, "MemorySet", R"({"label":")" + label + R"(","value":")" + value + R"(","pinned":false})");
}

struct MemoryFold {
  fold::MemoryKv kv;
  std::int64_t offset = 0;
  // The canonical FlatBuffers bytes of every line folded, by offset: the records a log would hold.
  std::map<std::int64_t, std::vector<std::uint8_t>> records;

  std::vector<fold::Applied> fold(const std::vector<std::string>& lines) {
    std::vector<fold::Applied> out;
    fold::Folder folder(kv);
    for (const auto& line : lines) {
      auto bytes = codec::json_to_flatbuffers(line);
      EXPECT_TRUE(bytes.ok()) << (bytes.ok() ? "" : bytes.error().message) << " in " << line;
      if (!bytes.ok()) continue;
      auto ev = codec::decode(*bytes, codec::Encoding::flatbuffers);
      EXPECT_TRUE(ev.ok()) << line;
      if (!ev.ok()) continue;
      records[offset] = *bytes;
      out.push_back(folder.apply(*ev, {0, offset, 1000 + offset}));
      ++offset;
    }
    kv.apply(folder.finish());
    return out;
  }

  // Overwrites one stored value, as damage on disk would.
  void put_raw(std::string key, std::string value) {
    fold::WriteSet w;
    w.put(std::move(key), std::move(value));
    kv.apply(w);
  }
};

}  // namespace statefold::testing
