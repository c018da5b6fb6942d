#include "append/append.h"

#include <algorithm>

namespace statefold::append {

std::string_view status_name(Status status) {
  switch (status) {
    case Status::pending: return "pending";
    case Status::appended: return "appended";
    case Status::accepted: return "accepted";
    case Status::duplicate: return "duplicate";
    case Status::rejected: return "rejected";
  }
  return "pending";
}

Status status_of(fold::Outcome outcome) {
  switch (outcome) {
    case fold::Outcome::accepted: return Status::accepted;
    case fold::Outcome::duplicate: return Status::duplicate;
    case fold::Outcome::rejected: return Status::rejected;
  }
  return Status::rejected;
}

bool Outcome::all_accepted() const {
  return kind == Kind::folded && !events.empty() &&
         std::all_of(events.begin(), events.end(), [](const EventOutcome& e) { return e.status == Status::accepted; });
}

const EventOutcome* Outcome::first_rejected() const {
  for (const auto& e : events) {
    if (e.status == Status::rejected) return &e;
  }
  return nullptr;
}

void SettleTracker::begin(const std::string& session_id) {
  std::lock_guard lock(_mutex);
  ++_open[session_id];
}

void SettleTracker::end(const std::string& session_id) {
  {
    std::lock_guard lock(_mutex);
    auto it = _open.find(session_id);
    if (it == _open.end()) return;
    if (--it->second <= 0) _open.erase(it);
  }
  _done.notify_all();
}

void SettleTracker::wait(std::string_view session_id, std::chrono::milliseconds patience) {
  std::unique_lock lock(_mutex);
  _done.wait_for(lock, patience, [&] { return !_open.contains(session_id); });
}

}  // namespace statefold::append
