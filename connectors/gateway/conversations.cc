// The Conversations API (OpenAI's /v1/conversations): a conversation is a session. Its id seals the session id
// (internal/ids.h); its items are the session's messages as its context has them, each with an id that seals the
// session, the message's version and the item's place in it. Everything a call changes is an event on the log:
//
//   POST   /v1/conversations                     SessionOpened with the metadata, then the items as messages
//   GET    /v1/conversations/{id}                the header: created_at, metadata
//   POST   /v1/conversations/{id}                SessionAmended with the new metadata
//   DELETE /v1/conversations/{id}                SessionClosed: gone for the API, its events stay for audit
//   POST   /v1/conversations/{id}/items          the items as messages, conditional on the session's version
//   GET    /v1/conversations/{id}/items[/{item}] the session's messages as items (limit, order, after)
//   DELETE /v1/conversations/{id}/items/{item}   SessionAmended withdrawing the item's message from the context
#include <boost/json.hpp>

#include <algorithm>
#include <charconv>

#include "connectors/gateway/internal/events.h"
#include "connectors/gateway/internal/turn.h"
#include "engine/base/time.h"
#include "engine/fold/read.h"

namespace statefold::gateway::internal {

namespace {

const std::string kRouteConversations = "POST /v1/conversations";
const std::string kRouteConversation = "/v1/conversations/{id}";
const std::string kRouteItems = "/v1/conversations/{id}/items";
constexpr std::string_view kPrefix = "/v1/conversations";
constexpr std::size_t kDefaultListLimit = 20;
constexpr std::size_t kMaxListLimit = 100;

std::string route_of(const http::Request& request, const std::string& route) { return request.method + " " + route; }

boost::json::object metadata_object(const std::vector<std::pair<std::string, std::string>>& pairs) {
  boost::json::object out;
  for (const auto& [key, value] : pairs) out[key] = value;
  return out;
}

http::Response conversation_response(const Core& core, const std::string& session,
                                     const state::SessionHeaderT& header, const std::string& route) {
  const boost::json::object body{{"id", core.ids.conversation_id(session)},
                                 {"object", "conversation"},
                                 {"created_at", header.first_occurred_at_us / 1000000},
                                 {"metadata", metadata_object(fold::metadata_pairs(header))}};
  auto response = http::json_response(200, boost::json::serialize(body), route);
  // The caller's own session, as a turn's answer names it: for the session routes (history, audit, fork).
  response.headers.emplace_back("x-session-id", session);
  return response;
}

// A message as Conversations items: a message item for its text (none for an assistant message that only calls
// tools), then one function_call item per call; a tool result is a function_call_output item.
void append_items(const IdSeal& ids, const std::string& session, const context::Message& m,
                  std::vector<boost::json::object>& out) {
  if (m.role == context::Role::tool) {
    std::string output;
    for (const auto& part : m.content) output += part.text;
    out.push_back({{"type", "function_call_output"},
                   {"id", ids.item_id(session, m.version, 0)},
                   {"call_id", m.tool_call_id},
                   {"output", output},
                   {"status", "completed"}});
    return;
  }
  const bool assistant = m.role == context::Role::assistant;
  if (!m.content.empty() || m.tool_calls.empty()) {
    boost::json::array content;
    for (const auto& part : m.content) {
      if (part.kind == context::PartKind::image_url) {
        content.push_back({{"type", "input_image"}, {"image_url", part.text}, {"detail", "auto"}});
      } else if (assistant) {
        content.push_back({{"type", "output_text"}, {"text", part.text}, {"annotations", boost::json::array()}});
      } else {
        content.push_back({{"type", "input_text"}, {"text", part.text}});
      }
    }
    out.push_back({{"type", "message"},
                   {"id", ids.item_id(session, m.version, 0)},
                   {"status", "completed"},
                   {"role", std::string(context::role_name(m.role))},
                   {"content", std::move(content)}});
  }
  for (std::size_t k = 0; k < m.tool_calls.size(); ++k) {
    const auto& call = m.tool_calls[k];
    out.push_back({{"type", "function_call"},
                   {"id", ids.item_id(session, m.version, static_cast<std::uint32_t>(k + 1))},
                   {"call_id", call.id},
                   {"name", call.name},
                   {"arguments", call.arguments},
                   {"status", "completed"}});
  }
}

http::Response list_response(std::vector<boost::json::object> items, bool has_more, const std::string& route) {
  boost::json::array data;
  for (auto& item : items) data.push_back(std::move(item));
  boost::json::object body{{"object", "list"}, {"has_more", has_more}};
  body["first_id"] = data.empty() ? boost::json::value(nullptr) : data.front().as_object().at("id");
  body["last_id"] = data.empty() ? boost::json::value(nullptr) : data.back().as_object().at("id");
  body["data"] = std::move(data);
  return http::json_response(200, boost::json::serialize(body), route);
}

// A page of `all` (oldest first) as the query asks: limit (1..100, default 20), order (desc by default, as OpenAI
// lists items), after (an item id of `where`).
http::Response list_page(std::vector<boost::json::object> all, const http::Request& request,
                         const std::string& route, const std::string& where) {
  std::size_t limit = kDefaultListLimit;
  if (auto it = request.query.find("limit"); it != request.query.end()) {
    const auto& text = it->second;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), limit);
    if (ec != std::errc() || end != text.data() + text.size() || limit < 1 || limit > kMaxListLimit) {
      return openai_error(400, "limit: an integer from 1 to " + std::to_string(kMaxListLimit),
                          "invalid_request_error", route);
    }
  }
  bool ascending = false;
  if (auto it = request.query.find("order"); it != request.query.end()) {
    if (it->second != "asc" && it->second != "desc") {
      return openai_error(400, "order: \"asc\" or \"desc\"", "invalid_request_error", route);
    }
    ascending = it->second == "asc";
  }
  if (!ascending) std::reverse(all.begin(), all.end());
  auto from = all.begin();
  if (auto it = request.query.find("after"); it != request.query.end() && !it->second.empty()) {
    from = std::find_if(all.begin(), all.end(),
                        [&](const boost::json::object& item) { return item.at("id").as_string() == it->second; });
    if (from == all.end()) {
      return openai_error(404, "after: no item " + it->second + " in " + where, "invalid_request_error", route);
    }
    ++from;
  }
  const auto available = static_cast<std::size_t>(all.end() - from);
  std::vector<boost::json::object> page(std::make_move_iterator(from),
                                        std::make_move_iterator(from + std::min(limit, available)));
  return list_response(std::move(page), available > limit, route);
}

class Conversations {
 public:
  Conversations(Core& core, const http::Request& request, const auth::Principal& caller)
      : _core(core), _request(request), _caller(caller) {}

  http::Response handle() {
    const std::string& raw = _request.raw_path.empty() ? _request.path : _request.raw_path;
    if (raw == kPrefix) {
      if (_request.method != "POST") return error(405, "use POST", kRouteConversations);
      return create();
    }
    // /v1/conversations/{id}[/items[/{item}]]: ids are url-safe, so the parts split on '/'.
    std::string_view rest = std::string_view(raw).substr(kPrefix.size() + 1);
    const auto slash = rest.find('/');
    const std::string id(rest.substr(0, slash));
    if (slash == std::string_view::npos) {
      _route = route_of(_request, kRouteConversation);
      if (_request.method == "GET") return with_conversation(id, [&] { return retrieve(); });
      if (_request.method == "POST") return with_conversation(id, [&] { return update(); });
      if (_request.method == "DELETE") return with_conversation(id, [&] { return remove(); });
      return error(405, "use GET, POST or DELETE", _route);
    }
    rest.remove_prefix(slash + 1);
    if (rest == "items") {
      _route = route_of(_request, kRouteItems);
      if (_request.method == "GET") return with_conversation(id, [&] { return list_items(); });
      if (_request.method == "POST") return with_conversation(id, [&] { return add_items(); });
      return error(405, "use GET or POST", _route);
    }
    if (rest.starts_with("items/") && rest.size() > 6) {
      _route = route_of(_request, kRouteItems + "/{item}");
      const std::string item(rest.substr(6));
      if (_request.method == "GET") return with_conversation(id, [&] { return get_item(item); });
      if (_request.method == "DELETE") return with_conversation(id, [&] { return delete_item(item); });
      return error(405, "use GET or DELETE", _route);
    }
    return error(404, "no such route: " + _request.method + " " + _request.path, _request.path);
  }

 private:
  http::Response error(int status, std::string_view message, const std::string& route,
                       std::string_view type = "invalid_request_error") const {
    return openai_error(status, message, type, route);
  }

  // Opens the id, checks the caller's tenant and this instance's ownership, reads the header: the action runs on a
  // live conversation (not deleted), else 404 as for one that never existed.
  template <typename Action>
  http::Response with_conversation(const std::string& id, Action&& action) {
    auto session = _core.ids.open_conversation(id);
    if (!session || !_caller.owns(*session)) return error(404, "no conversation " + id, _route);
    _id = id;
    _session = std::move(*session);
    if (auto refused = _core.refuse_elsewhere(_session, _route)) return std::move(*refused);
    _core.events.settle(_session, kSettlePatience);
    if (auto missing = read_header()) return std::move(*missing);
    return action();
  }

  std::optional<http::Response> read_header() {
    _snapshot = _core.state.snapshot();
    auto header = fold::read_header(*_snapshot, _session);
    if (!header) return error(500, header.error().message, _route, "server_error");
    if (!*header || !fold::begun(**header) || (*header)->closed || (*header)->erased) {
      return error(404, "no conversation " + _id, _route);
    }
    _header = std::move(**header);
    return std::nullopt;
  }

  std::optional<protocol::ConversationRequest> parse(std::optional<http::Response>& refused) {
    auto parsed = protocol::parse_conversation_request(_request.body);
    if (!parsed) {
      refused = error(400, parsed.error().message, _route);
      return std::nullopt;
    }
    return std::move(*parsed);
  }

  http::Response create() {
    _route = kRouteConversations;
    std::optional<http::Response> refused;
    auto parsed = parse(refused);
    if (!parsed) return std::move(*refused);
    _session = _core.new_session_id(_caller.session_prefix() + "conv-");
    if (auto elsewhere = _core.refuse_elsewhere(_session, _route)) return std::move(*elsewhere);
    // Opened as a Responses turn's session is: leading system and developer items become its system prompt.
    std::vector<codec::KeyValue> metadata;
    for (auto& [key, value] : parsed->metadata.value_or(decltype(parsed->metadata)::value_type{})) {
      metadata.push_back({key, value});
    }
    auto batch = input_events(_session, std::nullopt, parsed->items.value_or(std::vector<protocol::ClientMessage>{}),
                              "", "", {}, std::move(metadata));
    if (!batch) return error(400, batch.error().message, _route);
    auto result = append_and_wait(_core.events, _session, std::move(*batch));
    if (!result.all_accepted()) return append_failure(result, _route);
    if (auto missing = read_header()) return std::move(*missing);
    return conversation_response(_core, _session, _header, _route);
  }

  http::Response retrieve() { return conversation_response(_core, _session, _header, _route); }

  http::Response update() {
    std::optional<http::Response> refused;
    auto parsed = parse(refused);
    if (!parsed) return std::move(*refused);
    if (!parsed->metadata || parsed->items) return error(400, "metadata: required (and nothing else)", _route);
    codec::SessionAmended amended;
    auto& pairs = amended.metadata.emplace();
    for (auto& [key, value] : *parsed->metadata) pairs.push_back({key, value});
    amended.reason = "conversation metadata updated";
    if (auto changed = change(amended)) return std::move(*changed);
    return conversation_response(_core, _session, _header, _route);
  }

  http::Response remove() {
    auto lock = _core.turns.take(_session, kChangePatience);
    if (!lock) return busy();
    append::Batch batch(_session, "gateway", std::nullopt);
    if (auto added = batch.add(codec::SessionClosed{"conversation deleted"}); !added) {
      return error(500, added.error().message, _route, "server_error");
    }
    auto result = append_and_wait(_core.events, _session, batch.take());
    if (!result.all_accepted()) return append_failure(result, _route);
    const boost::json::object body{{"id", _id}, {"object", "conversation.deleted"}, {"deleted", true}};
    return http::json_response(200, boost::json::serialize(body), _route);
  }

  http::Response add_items() {
    std::optional<http::Response> refused;
    auto parsed = parse(refused);
    if (!parsed) return std::move(*refused);
    if (!parsed->items || parsed->items->empty() || parsed->metadata) {
      return error(400, "items: required, at least one (and nothing else)", _route);
    }
    auto lock = _core.turns.take(_session, kChangePatience);
    if (!lock) return busy();
    if (auto missing = read_header()) return std::move(*missing);  // as the lock found it
    // Conditional on the version read: the items land right after what the caller has seen, whole or not at all.
    auto batch = input_events(_session, _header.version, *parsed->items, "", "");
    if (!batch) return error(400, batch.error().message, _route);
    auto result = append_and_wait(_core.events, _session, std::move(*batch));
    if (!result.all_accepted()) return append_failure(result, _route);
    std::vector<boost::json::object> items;
    for (std::size_t i = 0; i < parsed->items->size(); ++i) {
      auto message = protocol::to_message((*parsed->items)[i]);
      message.version = result.events[i].version;
      append_items(_core.ids, _session, message, items);
    }
    return list_response(std::move(items), false, _route);
  }

  http::Response list_items() {
    std::vector<boost::json::object> all;
    if (auto failed = items(all)) return std::move(*failed);
    return list_page(std::move(all), _request, _route, "conversation " + _id);
  }

  http::Response get_item(const std::string& item_id) {
    std::vector<boost::json::object> all;
    if (auto failed = items(all)) return std::move(*failed);
    for (auto& item : all) {
      if (item.at("id").as_string() == item_id) {
        return http::json_response(200, boost::json::serialize(item), _route);
      }
    }
    return error(404, "no item " + item_id + " in conversation " + _id, _route);
  }

  http::Response delete_item(const std::string& item_id) {
    auto at = _core.ids.open_item(item_id);
    if (!at || at->session != _session) return error(404, "no item " + item_id + " in conversation " + _id, _route);
    std::vector<boost::json::object> all;
    if (auto failed = items(all)) return std::move(*failed);
    const bool present = std::any_of(all.begin(), all.end(), [&](const boost::json::object& item) {
      return item.at("id").as_string() == item_id;
    });
    if (!present) return error(404, "no item " + item_id + " in conversation " + _id, _route);
    // An item is part of a message (a reply's text and its calls are one): the message leaves the context whole.
    codec::SessionAmended amended;
    amended.withdraw_versions = std::vector<std::uint64_t>{at->version};
    amended.reason = "conversation item deleted";
    if (auto changed = change(amended)) return std::move(*changed);
    return conversation_response(_core, _session, _header, _route);
  }

  // The conversation's items, oldest first: the messages its context has now.
  std::optional<http::Response> items(std::vector<boost::json::object>& out) {
    auto ok = _core.cache.with_state(*_snapshot, _session, _header.version,
                                     [&](context::SessionState& state, std::string&) {
                                       for (const auto& m : state.history) append_items(_core.ids, _session, m, out);
                                     });
    if (!ok) return error(500, ok.error().message, _route, "server_error");
    return std::nullopt;
  }

  // Appends one change, with the conversation's turn lock held so it does not land inside a turn; re-reads the
  // header after it. nullopt when it was recorded.
  std::optional<http::Response> change(const codec::SessionAmended& amended) {
    auto lock = _core.turns.take(_session, kChangePatience);
    if (!lock) return busy();
    append::Batch batch(_session, "gateway", std::nullopt);
    if (auto added = batch.add(amended); !added) return error(400, added.error().message, _route);
    auto result = append_and_wait(_core.events, _session, batch.take());
    if (!result.all_accepted()) return append_failure(result, _route);
    return read_header();
  }

  http::Response busy() const {
    return openai_error(409, "conversation " + _id + " has a turn in progress; retry when it has answered", "conflict",
                        _route, "turn_in_progress");
  }

  Core& _core;
  const http::Request& _request;
  const auth::Principal& _caller;
  std::string _route = kRouteConversations;
  std::string _id;
  std::string _session;
  std::unique_ptr<fold::Reader> _snapshot;
  state::SessionHeaderT _header;
};

}  // namespace

bool conversations_route(std::string_view raw_path) {
  return raw_path == kPrefix || (raw_path.starts_with(kPrefix) && raw_path.size() > kPrefix.size() + 1 &&
                                 raw_path[kPrefix.size()] == '/');
}

void conversations(Core& core, const http::Request& request, const auth::Principal& caller,
                   const http::Respond& respond) {
  respond(Conversations(core, request, caller).handle());
}

http::Response response_input_items(Core& core, const http::Request& request, const auth::Principal& caller,
                                    const std::string& id) {
  const std::string route = "GET /v1/responses/{id}/input_items";
  auto at = core.ids.open_response(id);
  if (!at || !caller.owns(at->session)) return openai_error(404, "no response " + id, "invalid_request_error", route);
  if (auto refused = core.refuse_elsewhere(at->session, route)) return std::move(*refused);
  core.events.settle(at->session, kSettlePatience);
  const auto snapshot = core.state.snapshot();
  auto inputs = turn_inputs(*snapshot, at->session, at->version);
  if (!inputs) return openai_error(500, inputs.error().message, "server_error", route);
  if (!inputs->reply) return openai_error(404, "no response " + id, "invalid_request_error", route);
  std::vector<boost::json::object> all;
  for (const auto& m : inputs->messages) append_items(core.ids, at->session, m, all);
  return list_page(std::move(all), request, route, "response " + id);
}

std::optional<std::string> conversation_session(const Core& core, const auth::Principal& caller,
                                                std::string_view conversation) {
  auto session = core.ids.open_conversation(conversation);
  if (!session || !caller.owns(*session)) return std::nullopt;
  return session;
}

}  // namespace statefold::gateway::internal
