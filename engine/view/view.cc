#include "engine/view/view.h"

#include <boost/json.hpp>

#include <stdexcept>

#include "engine/base/hex.h"
#include "engine/codec/codec.h"
#include "engine/fold/as_of.h"
#include "engine/fold/fold.h"
#include "engine/fold/read.h"
#include "statefold/schema/events_generated.h"

namespace statefold::view {

namespace json = boost::json;

namespace {

std::string_view sv(const flatbuffers::String* s) { return s == nullptr ? std::string_view() : s->string_view(); }

// The views' signatures predate damage being an error value; like fold::load_header, they throw (the callers'
// boundaries catch), so a damaged value is never shown as state.
template <typename T>
T checked(base::Result<T> result) {
  if (!result) throw std::runtime_error(result.error().message);
  if constexpr (!std::is_void_v<T>) return std::move(result).value();
}

json::object message_json(std::uint64_t version, const schema::Message& m) {
  json::object o;
  o["version"] = version;
  o["role"] = schema::EnumNameRole(m.role());
  std::string text;
  json::array parts;
  if (m.content() != nullptr) {
    for (const auto* part : *m.content()) {
      if (part->kind() == schema::ContentKind::text) {
        if (!text.empty()) text.push_back('\n');
        text.append(sv(part->text()));
      } else {
        parts.push_back(json::object{{"kind", schema::EnumNameContentKind(part->kind())}, {"text", sv(part->text())}});
      }
    }
  }
  o["content"] = text;
  if (!parts.empty()) o["other_parts"] = std::move(parts);
  if (m.tool_calls() != nullptr && m.tool_calls()->size() > 0) {
    json::array calls;
    for (const auto* c : *m.tool_calls()) {
      calls.push_back(json::object{{"id", sv(c->id())}, {"name", sv(c->name())}, {"arguments", sv(c->arguments())}});
    }
    o["tool_calls"] = std::move(calls);
  }
  if (m.tool_call_id() != nullptr) o["tool_call_id"] = sv(m.tool_call_id());
  return o;
}

std::optional<json::object> session_object(const fold::Reader& reader, std::string_view session_id,
                                           const SessionOptions& options) {
  const auto header = checked(fold::read_header(reader, session_id));
  if (!header || !fold::begun(*header)) return std::nullopt;
  const auto& h = *header;
  json::object o;
  o["session_id"] = session_id;
  o["version"] = h.version;
  o["state_hash"] = base::to_hex(h.state_hash);
  o["chain_hash"] = base::to_hex(h.chain_hash);
  o["status"] = h.closed ? "closed" : (h.opened ? "open" : "implicit");
  o["erased"] = h.erased;
  o["model"] = h.model;
  o["system_prompt"] = h.system_prompt;
  json::object policy{{"token_budget", h.token_budget}, {"output_reserve", h.output_reserve},
                      {"tokenizer", h.tokenizer}, {"provider", h.provider}};
  o["policy"] = std::move(policy);
  json::object metadata;
  for (const auto& [key, value] : fold::metadata_pairs(h)) metadata[key] = value;
  o["metadata"] = std::move(metadata);
  if (!h.parent_session_id.empty()) {
    o["parent"] = json::object{{"session_id", h.parent_session_id}, {"version", h.parent_version}};
  }
  o["counts"] = json::object{{"messages", h.messages},     {"tool_calls", h.tool_calls},
                             {"memory_entries", h.memory_entries}, {"receipts", h.receipts},
                             {"custom_events", h.custom_events}, {"unknown_events", h.unknown_events},
                             {"duplicates", h.duplicates}, {"rejections", h.rejections}};
  o["usage"] = json::object{{"input_tokens", h.input_tokens}, {"output_tokens", h.output_tokens},
                            {"cached_tokens", h.cached_tokens}};
  if (!h.summary.empty()) o["summary"] = json::object{{"text", h.summary}, {"through_version", h.summary_through}};

  json::array memory;
  for (const auto& m : checked(fold::read_memory(reader, session_id))) {
    memory.push_back(json::object{
        {"label", m.label}, {"value", m.value}, {"pinned", m.pinned}, {"version", m.version}});
  }
  o["memory"] = std::move(memory);

  // The newest messages: walk history from max(1, version - window) on; cost bounded by the window.
  json::array messages;
  std::uint64_t shown = 0;
  if (options.max_messages > 0 && h.messages > 0) {
    // Messages are most events; start far enough back to find max_messages of them in the common case.
    const std::uint64_t back = std::min<std::uint64_t>(h.version, options.max_messages * 4);
    json::array window;
    checked(fold::visit_history(reader, session_id, {.from = h.version - back + 1}, [&](const fold::HistoryRecord& r) {
      if (r.entry.payload_type() != static_cast<std::uint8_t>(schema::Payload::Message)) return true;
      window.push_back(message_json(r.version(), *r.event.payload_as_Message()));
      return true;
    }));
    const std::size_t skip = window.size() > options.max_messages ? window.size() - options.max_messages : 0;
    for (std::size_t i = skip; i < window.size(); ++i) messages.push_back(window[i]);
    shown = messages.size();
  }
  o["messages_shown"] = shown;
  o["messages"] = std::move(messages);
  return o;
}

std::string hex_or_zero(const std::vector<std::uint8_t>& digest) {
  return digest.empty() ? std::string(64, '0') : base::to_hex(digest);
}

}  // namespace

std::optional<std::string> session_json(const fold::Reader& reader, std::string_view session_id,
                                        const SessionOptions& options) {
  auto o = session_object(reader, session_id, options);
  if (!o) return std::nullopt;
  return json::serialize(*o);
}

namespace {

std::string text_of(const json::object* o);

base::Result<json::object> session_object_at(const fold::Reader& reader, std::string_view session_id,
                                             std::uint64_t version, const SessionOptions& options) {
  auto past = fold::SessionAsOf::open(reader, session_id, version);
  if (!past) return past.error();
  auto o = session_object(**past, session_id, options);
  if (!o) return base::make_error("no session " + std::string(session_id));
  (*o)["as_of"] = json::object{{"version", version},
                               {"current_version", (*past)->current_version()},
                               {"redacted", (*past)->redacted()}};
  return std::move(*o);
}

}  // namespace

base::Result<std::string> session_json_at(const fold::Reader& reader, std::string_view session_id,
                                          std::uint64_t version, const SessionOptions& options) {
  auto o = session_object_at(reader, session_id, version, options);
  if (!o) return o.error();
  return json::serialize(*o);
}

base::Result<std::string> session_text_at(const fold::Reader& reader, std::string_view session_id,
                                          std::uint64_t version, const SessionOptions& options) {
  auto o = session_object_at(reader, session_id, version, options);
  if (!o) return o.error();
  const auto& as_of = o->at("as_of").as_object();
  return "as of version " + json::serialize(as_of.at("version")) + " (current version " +
         json::serialize(as_of.at("current_version")) + ")" +
         (as_of.at("redacted").as_bool() ? ", erased since: content redacted" : "") + "\n" + text_of(&*o);
}

std::optional<std::string> session_text(const fold::Reader& reader, std::string_view session_id,
                                        const SessionOptions& options) {
  auto o = session_object(reader, session_id, options);
  if (!o) return std::nullopt;
  return text_of(&*o);
}

namespace {

std::string text_of(const json::object* o) {
  std::string out;
  auto line = [&](std::string_view k, const json::value& v) {
    out += std::string(k) + ": " + (v.is_string() ? std::string(v.as_string()) : json::serialize(v)) + "\n";
  };
  for (const char* k : {"session_id", "version", "status", "model", "state_hash", "chain_hash"}) line(k, o->at(k));
  line("system_prompt", o->at("system_prompt"));
  line("counts", o->at("counts"));
  line("usage", o->at("usage"));
  if (o->contains("summary")) line("summary", o->at("summary"));
  out += "memory:\n";
  for (const auto& m : o->at("memory").as_array()) {
    const auto& e = m.as_object();
    out += "  " + std::string(e.at("label").as_string()) + (e.at("pinned").as_bool() ? " (pinned)" : "") + " = " +
           std::string(e.at("value").as_string()) + "\n";
  }
  out += "messages (newest " + std::to_string(o->at("messages_shown").as_uint64()) + " of " +
         json::serialize(o->at("counts").as_object().at("messages")) + "):\n";
  for (const auto& m : o->at("messages").as_array()) {
    const auto& e = m.as_object();
    out += "  v" + json::serialize(e.at("version")) + " " + std::string(e.at("role").as_string()) + ": " +
           std::string(e.at("content").as_string()) + "\n";
    if (e.contains("tool_calls")) {
      for (const auto& c : e.at("tool_calls").as_array()) {
        out += "      -> tool call " + std::string(c.at("id").as_string()) + " " + std::string(c.at("name").as_string()) +
               "(" + std::string(c.at("arguments").as_string()) + ")\n";
      }
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> history_json(const fold::Reader& reader, std::string_view session_id,
                                        std::uint64_t from_version, std::uint64_t limit) {
  const auto header = checked(fold::read_header(reader, session_id));
  if (!header || !fold::begun(*header)) return std::nullopt;
  json::object o;
  o["session_id"] = session_id;
  o["version"] = header->version;
  json::array events;
  const auto next = checked(fold::visit_history(
      reader, session_id, {.from = from_version, .limit = limit}, [&](const fold::HistoryRecord& r) {
        const auto& entry = r.entry;
        json::object e;
        e["version"] = entry.version();
        e["partition"] = entry.partition();
        e["offset"] = entry.offset();
        e["log_time_ms"] = entry.log_time_ms();
        const auto* chain = entry.chain_hash();
        e["chain_hash"] = chain == nullptr ? std::string() : base::to_hex(std::span(chain->data(), chain->size()));
        e["payload_type"] = codec::payload_type_name(entry.payload_type());
        e["event"] = json::parse(codec::flatbuffers_to_json(r.event_bytes));
        events.push_back(std::move(e));
        return true;
      }));
  o["events"] = std::move(events);
  if (next) {
    o["next_from_version"] = *next;
  } else {
    o["next_from_version"] = nullptr;
  }
  return json::serialize(o);
}

base::Result<bool> visit_session_rows(
    const fold::Reader& reader, std::string_view prefix, std::string_view cursor, std::uint64_t limit,
    const std::function<void(std::string_view session_id, std::uint64_t version, std::string_view status)>& visit) {
  return fold::visit_sessions(reader, prefix, cursor, limit,
                              [&](std::string_view id, const state::SessionHeaderT& h) {
                                visit(id, h.version, h.closed ? "closed" : (h.opened ? "open" : "implicit"));
                              });
}

std::string sessions_json(const fold::Reader& reader, std::string_view prefix, std::string_view cursor,
                          std::uint64_t limit) {
  json::array sessions;
  const bool more = checked(visit_session_rows(
      reader, prefix, cursor, limit, [&](std::string_view id, std::uint64_t version, std::string_view status) {
        sessions.push_back(json::object{{"session_id", id}, {"version", version}, {"status", status}});
      }));
  // The cursor is the last one shown: the next page starts strictly after it.
  std::string next;
  if (more && !sessions.empty()) next = std::string(sessions.back().as_object().at("session_id").as_string());
  json::object o;
  o["sessions"] = std::move(sessions);
  if (next.empty()) {
    o["next_cursor"] = nullptr;
  } else {
    o["next_cursor"] = next;
  }
  return json::serialize(o);
}

std::string usage_json(const fold::Reader& reader, std::optional<std::string_view> tenant, std::string_view from_day,
                       std::string_view through_day) {
  std::vector<state::UsageT> rows;
  checked(fold::visit_usage(reader, tenant, from_day, through_day,
                            [&rows](const state::UsageT& row) { rows.push_back(row); }));
  return usage_json(rows, from_day, through_day);
}

std::string usage_json(const std::vector<state::UsageT>& rows, std::string_view from_day, std::string_view through_day) {
  json::array data;
  std::uint64_t totals[5] = {};
  for (const state::UsageT& row : rows) {
    const std::uint64_t figures[5] = {row.calls, row.failed, row.input_tokens, row.output_tokens, row.cached_tokens};
    for (int i = 0; i < 5; ++i) totals[i] += figures[i];
    data.push_back(json::object{{"tenant", row.tenant},
                                {"day", row.day},
                                {"key", row.caller},
                                {"model", row.model},
                                {"calls", row.calls},
                                {"failed", row.failed},
                                {"input_tokens", row.input_tokens},
                                {"output_tokens", row.output_tokens},
                                {"cached_tokens", row.cached_tokens}});
  }
  json::object o{{"object", "list"}, {"from", from_day}, {"to", through_day}};
  o["data"] = std::move(data);
  o["totals"] = json::object{{"calls", totals[0]},
                             {"failed", totals[1]},
                             {"input_tokens", totals[2]},
                             {"output_tokens", totals[3]},
                             {"cached_tokens", totals[4]}};
  return json::serialize(o);
}

std::string summary_json(const fold::Reader& reader, const std::map<std::int32_t, std::int64_t>& offsets) {
  const auto s = checked(fold::read_summary(reader));
  json::object o;
  o["sessions"] = s.sessions;
  o["events_applied"] = s.events_applied;
  o["duplicates"] = s.duplicates;
  o["rejections"] = s.rejections;
  o["unknown_events"] = s.unknown_events;
  o["dlq_records"] = s.dlq_records;
  json::object parts;
  for (const auto& [p, offset] : offsets) parts[std::to_string(p)] = offset;
  o["offsets"] = std::move(parts);
  o["store_hash"] = hex_or_zero(s.store_hash);
  return json::serialize(o);
}

std::string summary_text(const fold::Reader& reader, const std::map<std::int32_t, std::int64_t>& offsets) {
  const auto s = checked(fold::read_summary(reader));
  // Appended piece by piece: GCC 12 at -O3 warns (-Wrestrict, falsely) on chains of std::string operator+ here.
  std::string out;
  auto line = [&out](std::string_view label, const std::string& value) {
    out.append(label).append(value).append("\n");
  };
  line("sessions:        ", std::to_string(s.sessions));
  line("events applied:  ", std::to_string(s.events_applied));
  line("duplicates:      ", std::to_string(s.duplicates));
  line("rejections:      ", std::to_string(s.rejections));
  line("unknown events:  ", std::to_string(s.unknown_events));
  line("dead letters:    ", std::to_string(s.dlq_records));
  std::string stored;
  if (offsets.empty()) stored = " (none)";
  for (const auto& [p, offset] : offsets) stored.append(" ").append(std::to_string(p)).append(":").append(std::to_string(offset));
  line("stored offsets: ", stored);
  line("store hash:      ", hex_or_zero(s.store_hash));
  return out;
}

std::string store_hash_hex(const fold::Reader& reader) {
  return hex_or_zero(checked(fold::read_summary(reader)).store_hash);
}

}  // namespace statefold::view
