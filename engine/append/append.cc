#include "engine/append/append.h"

#include <algorithm>
#include <random>

#include "engine/codec/codec.h"

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

std::string random_event_id() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  const std::uint64_t hi = rng();
  const std::uint64_t lo = rng();
  codec::EventId id{};
  for (int i = 0; i < 8; ++i) {
    id[i] = static_cast<std::uint8_t>(hi >> (56 - 8 * i));
    id[8 + i] = static_cast<std::uint8_t>(lo >> (56 - 8 * i));
  }
  return codec::event_id_to_string(id);
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Batch::Batch(std::string session_id, std::string source, std::optional<std::uint64_t> expected_version)
    : _session_id(std::move(session_id)), _source(std::move(source)), _expected_version(expected_version) {}

base::Result<void> Batch::add(const codec::Payload& payload, std::string event_id) {
  codec::Envelope envelope;
  envelope.event_id = event_id.empty() ? random_event_id() : std::move(event_id);
  envelope.session_id = _session_id;
  envelope.occurred_at_us = now_us();
  envelope.source = _source;
  if (_expected_version && _events.empty()) envelope.expected_version = *_expected_version;
  if (_expected_version && !_events.empty()) envelope.expected_previous_event_id = _events.back().first;
  auto bytes = codec::build(envelope, payload);
  if (!bytes) return base::make_error(base::ErrorCode::invalid_argument, bytes.error().message);
  _events.emplace_back(std::move(envelope.event_id), std::move(*bytes));
  return {};
}

base::Result<void> Batch::add_json(std::string_view json, std::string event_id) {
  codec::EnvelopeDefaults defaults;
  defaults.session_id = _session_id;
  defaults.event_id = event_id.empty() ? random_event_id() : std::move(event_id);
  defaults.occurred_at_us = now_us();
  defaults.source = _source;
  if (_expected_version && _events.empty()) defaults.expected_version = *_expected_version;
  if (_expected_version && !_events.empty()) defaults.expected_previous_event_id = _events.back().first;
  auto encoded = codec::json_to_flatbuffers(json, defaults);
  if (!encoded) return base::make_error(base::ErrorCode::invalid_argument, encoded.error().message);
  _events.emplace_back(std::move(encoded->event_id), std::move(encoded->canonical));
  return {};
}

}  // namespace statefold::append
