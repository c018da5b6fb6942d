// Private to the gateway: one turn per session at a time on this instance (which owns the session's partition).
// A turn holds its session from its start until its reply and receipt are folded, so the next turn renders from a
// state that has them. Thread-safety: take() from any thread; a Held is released once, from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>

namespace statefold::gateway::internal {

class TurnLocks {
 public:
  class Held {
   public:
    Held(TurnLocks* owner, std::string session) : _owner(owner), _session(std::move(session)) {}
    Held(Held&& other) noexcept : _owner(std::exchange(other._owner, nullptr)), _session(std::move(other._session)) {}
    Held(const Held&) = delete;
    Held& operator=(const Held&) = delete;
    Held& operator=(Held&&) = delete;
    ~Held() {
      if (_owner != nullptr) _owner->release(_session);
    }

   private:
    TurnLocks* _owner;
    std::string _session;
  };

  // Waits up to `patience` for the session's previous turn (a few milliseconds after its answer went out, its
  // events are folded and it lets go); nullopt when a turn is still in progress after that.
  std::optional<Held> take(const std::string& session, std::chrono::milliseconds patience) {
    std::unique_lock lock(_mutex);
    if (!_freed.wait_for(lock, patience, [&] { return !_busy.contains(session); })) return std::nullopt;
    _busy.insert(session);
    return Held(this, session);
  }

 private:
  void release(const std::string& session) {
    {
      std::lock_guard lock(_mutex);
      _busy.erase(session);
    }
    _freed.notify_all();
  }
  std::mutex _mutex;
  std::condition_variable _freed;
  std::set<std::string, std::less<>> _busy;
};

}  // namespace statefold::gateway::internal
