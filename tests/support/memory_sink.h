// An append::Sink that folds each append at once, on the caller's thread, into a fold::MemoryKv at made-up log
// positions (partition 0, consecutive offsets), and reports each event's outcome as KafkaAppender would once the
// engine folded it: the write path of the HTTP API and the gateway in unit tests, with no broker.
//
//   statefold::testing::MemorySink sink;
//   gateway::Gateway gateway(options, state_over(sink), sink);
//   sink.before_next_append([](MemorySink& s, const std::string& session, const append::Events&) {
//     s.fold_json({testing::message(99, session, "user", "meanwhile")});  // a concurrent writer gets in first
//   });
//
// Thread-safety: every member from any thread. A hook runs with the sink unlocked, so it may fold.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/append/append.h"
#include "engine/codec/codec.h"
#include "engine/fold/fold.h"
#include "support/memory_fold.h"

namespace statefold::testing {

class MemorySink final : public append::Sink {
 public:
  // Runs before an append is folded (or failed), with what it is about to fold.
  using Hook = std::function<void(MemorySink& sink, const std::string& session_id, const append::Events& events)>;

  // What one append() was asked to do.
  struct Call {
    std::string session_id;
    std::size_t events = 0;
    append::Options options;
  };

  void append(std::string session_id, append::Events events, append::Options options,
              std::function<void(append::Outcome)> done) override {
    Hook hook;
    std::optional<std::string> failure;
    {
      std::lock_guard lock(_mutex);
      _calls.push_back({session_id, events.size(), options});
      hook = std::exchange(_hook, nullptr);
      failure = _failure;
    }
    if (hook) hook(*this, session_id, events);
    append::Outcome outcome;
    if (failure) {
      outcome.kind = append::Outcome::Kind::unavailable;
      outcome.error = *failure;
      return done(std::move(outcome));
    }
    if (options.settle_reads) _settling.begin(session_id);
    {
      std::lock_guard lock(_mutex);
      fold::Folder folder(_store.kv);
      for (auto& [id, bytes] : events) {
        auto ev = codec::decode(bytes, codec::Encoding::flatbuffers, session_id);
        EXPECT_TRUE(ev.ok()) << "an appended event does not decode: " << (ev.ok() ? "" : ev.error().message);
        if (!ev.ok()) continue;
        append::EventOutcome e;
        e.event_id = id;
        e.partition = 0;
        e.offset = _store.offset;
        const auto applied = folder.apply(*ev, {0, _store.offset, 1000 + _store.offset});
        ++_store.offset;
        e.status = append::status_of(applied.outcome);
        e.version = applied.outcome == fold::Outcome::duplicate ? applied.duplicate_of : applied.version;
        e.reason = applied.reason;
        outcome.events.push_back(std::move(e));
      }
      _store.kv.apply(folder.finish());
    }
    if (options.on_acknowledged) options.on_acknowledged();
    if (options.settle_reads) _settling.end(session_id);
    done(std::move(outcome));
  }

  void settle(std::string_view session_id, std::chrono::milliseconds patience) override {
    _settling.wait(session_id, patience);
  }

  // Folds events in the documented JSON form as one batch, outside any append: another writer, or a seed.
  std::vector<fold::Applied> fold_json(const std::vector<std::string>& lines) {
    std::lock_guard lock(_mutex);
    return _store.fold(lines);
  }


  // A copy of the state as it is now: what a store snapshot gives.
  std::unique_ptr<fold::Reader> snapshot() const {
    std::lock_guard lock(_mutex);
    return std::make_unique<fold::MemoryKv>(_store.kv);
  }

  // The next append() calls `hook` first (once).
  void before_next_append(Hook hook) {
    std::lock_guard lock(_mutex);
    _hook = std::move(hook);
  }
  // Every append from now on fails as unavailable with `error` (nullopt: they work again).
  void fail_appends(std::optional<std::string> error) {
    std::lock_guard lock(_mutex);
    _failure = std::move(error);
  }

  std::vector<Call> calls() const {
    std::lock_guard lock(_mutex);
    return _calls;
  }

 private:
  mutable std::mutex _mutex;
  MemoryFold _store;  // the folded state and the next offset
  std::vector<Call> _calls;
  Hook _hook;
  std::optional<std::string> _failure;
  append::SettleTracker _settling;
};

}  // namespace statefold::testing
