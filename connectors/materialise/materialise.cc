#include "connectors/materialise/materialise.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <utility>
#include <cmath>

#include "connectors/providers/provider.h"
#include "connectors/tokenizer/tokenizer.h"
#include "engine/base/json_text.h"
#include "engine/codec/codec.h"
#include "engine/fold/as_of.h"
#include "engine/fold/read.h"
#include "statefold/schema/events_generated.h"

namespace statefold::materialise {

namespace {

namespace json = boost::json;

constexpr std::uint32_t kDefaultBudget = 128000;
constexpr std::uint32_t kDefaultReserve = 4096;

std::string_view sv(const flatbuffers::String* s) { return s == nullptr ? std::string_view() : s->string_view(); }

}  // namespace

context::Message stored_message(std::uint64_t version, const schema::Message& m) {
  context::Message out;
  out.version = version;
  out.role = static_cast<context::Role>(static_cast<std::uint8_t>(m.role()));
  if (m.content() != nullptr) {
    for (const auto* part : *m.content()) {
      out.content.push_back({static_cast<context::PartKind>(static_cast<std::uint8_t>(part->kind())),
                             std::string(sv(part->text())), std::string(sv(part->media_type()))});
    }
  }
  if (m.tool_calls() != nullptr) {
    for (const auto* c : *m.tool_calls()) {
      out.tool_calls.push_back({std::string(sv(c->id())), std::string(sv(c->name())), std::string(sv(c->arguments()))});
    }
  }
  out.tool_call_id = sv(m.tool_call_id());
  out.name = sv(m.name());
  return out;
}

namespace {

// Configuration, memory and summary of the session at `version`, over `state` (history left alone).
base::Result<void> load_fixed(const fold::Reader& at, std::string_view session_id, context::SessionState& state) {
  auto header = fold::read_header(at, session_id);
  if (!header) return header.error();
  if (!*header) return base::make_error("no session " + std::string(session_id));
  auto memory = fold::read_memory(at, session_id);
  if (!memory) return memory.error();
  const auto& h = **header;
  state.session_id = std::string(session_id);
  state.version = h.version;
  state.model = h.model;
  state.system_prompt = h.system_prompt;
  state.policy.token_budget = h.token_budget == 0 ? kDefaultBudget : h.token_budget;
  state.policy.output_reserve = h.output_reserve == 0 ? kDefaultReserve : h.output_reserve;
  if (state.policy.output_reserve >= state.policy.token_budget) state.policy.output_reserve = state.policy.token_budget / 4;
  state.summary.reset();
  if (!h.summary.empty() || h.summary_through > 0) state.summary = context::Summary{h.summary, h.summary_through};
  state.memory.clear();
  for (auto& m : *memory) state.memory.push_back({std::move(m.label), std::move(m.value), m.pinned});
  return {};
}

// Withdrawn messages leave the context from the version that withdrew them on (a SessionAmended): a context
// rendered at an earlier version, as a receipt's audit renders it, still has them.
void withdraw(context::SessionState& state, const std::vector<std::uint64_t>& versions) {
  if (versions.empty()) return;
  std::erase_if(state.history, [&](const context::Message& m) {
    return std::find(versions.begin(), versions.end(), m.version) != versions.end();
  });
}

// Appends the session's messages with versions in (after, through], less those withdrawn on the way.
base::Result<void> append_history(const fold::Reader& reader, std::string_view session_id, std::uint64_t after,
                                  std::uint64_t through, context::SessionState& state) {
  auto read = fold::visit_history(reader, session_id, {.from = after + 1, .through = through},
                                  [&](const fold::HistoryRecord& r) {
                                    if (const auto* message = r.event.payload_as_Message()) {
                                      state.history.push_back(stored_message(r.version(), *message));
                                    } else if (const auto* amended = r.event.payload_as_SessionAmended()) {
                                      withdraw(state, codec::withdraw_versions(*amended));
                                    }
                                    return true;
                                  });
  if (!read) return read.error();
  return {};
}

// The header and memory at `version`: the live ones when the session is there, else rebuilt (time travel).
base::Result<void> load_fixed_at(const fold::Reader& reader, std::string_view session_id, std::uint64_t version,
                                 context::SessionState& state) {
  auto current = fold::read_header(reader, session_id);
  if (!current) return current.error();
  if (!*current) return base::make_error("no session " + std::string(session_id));
  if (version == (*current)->version) return load_fixed(reader, session_id, state);
  auto past = fold::SessionAsOf::open(reader, session_id, version);
  if (!past) return past.error();
  return load_fixed(**past, session_id, state);
}

class Counter final : public context::TokenCounter {
 public:
  Counter(std::shared_ptr<const tokenizer::Tokenizer> tokenizer, double margin)
      : _tokenizer(std::move(tokenizer)), _margin(margin) {}
  std::size_t count(std::string_view text) const override {
    const std::size_t n = _tokenizer->count(text);
    return _margin == 1.0 ? n : tokenizer::with_margin(n, _margin);
  }

 private:
  std::shared_ptr<const tokenizer::Tokenizer> _tokenizer;
  double _margin;
};

base::Result<std::shared_ptr<const tokenizer::Tokenizer>> load_tokenizer(tokenizer::Encoding encoding) {
  static std::mutex mutex;
  static std::map<tokenizer::Encoding, std::shared_ptr<const tokenizer::Tokenizer>> loaded;
  std::lock_guard lock(mutex);
  if (auto it = loaded.find(encoding); it != loaded.end()) return it->second;
  auto made = tokenizer::Tokenizer::load(encoding);
  if (!made) return made.error();
  loaded.emplace(encoding, *made);
  return *made;
}

std::string format_margin(double margin) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, margin);
  return std::string(buf, r.ptr);
}

}  // namespace

std::string RenderSpec::to_json() const {
  // Keys sorted; every value a string but the margin: the canonical form a receipt keeps and audit reads back.
  std::string out = "{\"context\":";
  base::append_json_string(out, context::kContextVersion);
  out += ",\"extra\":";
  base::append_json_string(out, extra);
  out += ",\"instructions\":";
  base::append_json_string(out, instructions);
  out += ",\"margin\":" + format_margin(margin) + ",\"max_output_tokens\":" + std::to_string(max_output_tokens) +
         ",\"model\":";
  base::append_json_string(out, model);
  out += ",\"output_limit\":";
  out += std::to_string(output_limit);
  out += ",\"provider\":";
  base::append_json_string(out, context::provider_name(provider));
  out += ",\"tokenizer\":";
  base::append_json_string(out, tokenizer);
  out += "}";
  return out;
}

base::Result<RenderSpec> RenderSpec::from_json(std::string_view text) {
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) return base::make_error("render: not a JSON object");
  const auto& o = v.as_object();
  auto string_field = [&](const char* name) -> base::Result<std::string> {
    const auto* f = o.if_contains(name);
    if (f == nullptr || !f->is_string()) return base::make_error(std::string("render.") + name + ": expected a string");
    return std::string(f->as_string());
  };
  auto context_version = string_field("context");
  if (!context_version) return context_version.error();
  if (*context_version != context::kContextVersion) {
    return base::make_error("render.context: rendered by " + *context_version + ", this build renders " +
                            std::string(context::kContextVersion));
  }
  RenderSpec spec;
  auto provider = string_field("provider");
  if (!provider) return provider.error();
  auto parsed = context::parse_provider(*provider);
  if (!parsed) return base::make_error("render.provider: unknown provider \"" + *provider + "\"");
  spec.provider = *parsed;
  for (auto [name, field] : {std::pair{"model", &spec.model}, std::pair{"tokenizer", &spec.tokenizer},
                             std::pair{"extra", &spec.extra}}) {
    auto value = string_field(name);
    if (!value) return value.error();
    *field = std::move(*value);
  }
  if (const auto* instructions = o.if_contains("instructions"); instructions != nullptr) {
    if (!instructions->is_string()) return base::make_error("render.instructions: expected a string");
    spec.instructions = std::string(instructions->as_string());
  }
  if (const auto* cap = o.if_contains("max_output_tokens"); cap != nullptr) {
    if (!cap->is_number()) return base::make_error("render.max_output_tokens: expected a number");
    spec.max_output_tokens = cap->to_number<std::uint64_t>();
  }
  if (const auto* limit = o.if_contains("output_limit"); limit != nullptr) {
    if (!limit->is_number()) return base::make_error("render.output_limit: expected a number");
    spec.output_limit = limit->to_number<std::uint64_t>();
  }
  const auto* margin = o.if_contains("margin");
  if (margin == nullptr || !margin->is_number()) return base::make_error("render.margin: expected a number");
  spec.margin = margin->to_number<double>();
  if (!(spec.margin >= 1.0 && spec.margin <= 2.0)) return base::make_error("render.margin: outside [1, 2]");
  return spec;
}

base::Result<context::SessionState> load_state(const fold::Reader& reader, std::string_view session_id,
                                               std::uint64_t version) {
  context::SessionState state;
  if (auto fixed = load_fixed_at(reader, session_id, version, state); !fixed) return fixed.error();
  if (auto history = append_history(reader, session_id, 0, version, state); !history) return history.error();
  return state;
}

base::Result<Rendered> render(context::SessionState& state, const RenderSpec& spec, std::string& counted_with) {
  // The encoding that counts: the spec's, else the model's, else o200k_base. The receipt records it.
  std::optional<tokenizer::Encoding> encoding;
  if (!spec.tokenizer.empty()) {
    encoding = tokenizer::encoding_from_name(spec.tokenizer);
    if (!encoding) return base::make_error("unknown tokenizer \"" + spec.tokenizer + "\"");
  } else {
    encoding = tokenizer::encoding_for_model(spec.model.empty() ? state.model : spec.model);
  }
  auto loaded = load_tokenizer(encoding.value_or(tokenizer::Encoding::o200k_base));
  if (!loaded) return loaded.error();
  const Counter counter(*loaded, spec.margin);
  Rendered out;
  out.tokenizer = std::string(tokenizer::encoding_name((*loaded)->encoding()));
  const std::string key = out.tokenizer + "*" + format_margin(spec.margin);
  if (counted_with != key) {
    for (auto& m : state.history) m.tokens.reset();
    counted_with = key;
  }
  for (auto& m : state.history) {
    if (!m.tokens) m.tokens = static_cast<std::uint32_t>(context::message_tokens(m, counter));
  }
  // The request's overrides apply to this render only; the cached state is put back as it was.
  const std::string session_model = state.model;
  const std::uint32_t session_reserve = state.policy.output_reserve;
  std::string session_prompt;
  if (!spec.instructions.empty()) {
    session_prompt = std::exchange(state.system_prompt, spec.instructions);
  }
  auto restore = [&] {
    state.model = session_model;
    state.policy.output_reserve = session_reserve;
    if (!spec.instructions.empty()) state.system_prompt = std::move(session_prompt);
  };
  if (!spec.model.empty()) state.model = spec.model;
  if (spec.output_limit > 0) {
    if (spec.output_limit >= state.policy.token_budget) {
      restore();
      return base::make_error("the reply's limit of " + std::to_string(spec.output_limit) +
                              " tokens leaves nothing of the session's token budget (" +
                              std::to_string(state.policy.token_budget) + ") for its input");
    }
    state.policy.output_reserve = static_cast<std::uint32_t>(spec.output_limit);
  } else if (spec.max_output_tokens > 0 && spec.max_output_tokens < state.policy.output_reserve) {
    state.policy.output_reserve = static_cast<std::uint32_t>(spec.max_output_tokens);  // receipts before output_limit
  }
  state.extra_tokens = spec.extra.empty() ? 0 : counter.count(spec.extra);  // tool schemas and the like
  auto materialised = context::materialise(state, counter);
  if (!materialised) {
    restore();
    return materialised.error();
  }
  out.context = std::move(*materialised);
  const providers::Provider& provider = providers::get(spec.provider);
  auto body = provider.render(out.context, {spec.extra});
  if (provider.offline() && body) out.echo = provider.offline_reply(out.context);
  restore();
  if (!body) return body.error();
  out.body = std::move(*body);
  out.hash = context::request_hash(out.body);
  return out;
}

base::Result<void> StateCache::with_state(
    const fold::Reader& reader, std::string_view session_id, std::uint64_t version,
    const std::function<void(context::SessionState&, std::string& counted_with)>& use) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(_mutex);
    auto it = _entries.find(session_id);
    if (it == _entries.end()) {
      if (_entries.size() >= _max_sessions) {
        // Bounded memory: the least recently used session goes (it is read from the store again if it returns).
        auto oldest = std::min_element(_entries.begin(), _entries.end(), [](const auto& a, const auto& b) {
          return a.second->last_used < b.second->last_used;
        });
        _entries.erase(oldest);
      }
      it = _entries.emplace(std::string(session_id), std::make_shared<Entry>()).first;
    }
    entry = it->second;
    entry->last_used = ++_uses;
  }
  std::lock_guard lock(entry->mutex);
  auto& state = entry->state;
  if (!entry->loaded || state.version > version) {
    // First use, or a read of an older version than cached: start over.
    state = context::SessionState{};
    state.version = 0;
    entry->counted_with.clear();
  }
  const std::uint64_t have = entry->loaded ? state.version : 0;
  if (auto fixed = load_fixed_at(reader, session_id, version, state); !fixed) {
    entry->loaded = false;
    return fixed.error();
  }
  if (auto history = append_history(reader, session_id, have, version, state); !history) {
    entry->loaded = false;
    return history.error();
  }
  entry->loaded = true;
  use(state, entry->counted_with);
  // Count what the history holds now (it grew, or was started over).
  if (state.history.size() < entry->measured) {
    entry->measured = 0;
    entry->bytes = 0;
  }
  std::size_t bytes = entry->bytes;
  for (; entry->measured < state.history.size(); ++entry->measured) {
    const auto& m = state.history[entry->measured];
    bytes += sizeof m + m.tool_call_id.size() + m.name.size();
    for (const auto& part : m.content) bytes += sizeof part + part.text.size() + part.media_type.size();
    for (const auto& call : m.tool_calls) bytes += sizeof call + call.id.size() + call.name.size() + call.arguments.size();
  }
  entry->bytes = bytes;
  evict(entry);
  return {};
}

void StateCache::evict(const std::shared_ptr<Entry>& keep) {
  std::lock_guard lock(_mutex);
  std::size_t total = 0;
  for (const auto& [id, e] : _entries) total += e->bytes;
  while (total > _max_bytes && _entries.size() > 1) {
    auto oldest = _entries.end();
    for (auto it = _entries.begin(); it != _entries.end(); ++it) {
      if (it->second != keep && (oldest == _entries.end() || it->second->last_used < oldest->second->last_used)) {
        oldest = it;
      }
    }
    if (oldest == _entries.end()) break;
    total -= oldest->second->bytes;
    _entries.erase(oldest);
  }
}

std::size_t StateCache::sessions() const {
  std::lock_guard lock(_mutex);
  return _entries.size();
}

std::size_t StateCache::bytes() const {
  std::lock_guard lock(_mutex);
  std::size_t total = 0;
  for (const auto& [id, e] : _entries) total += e->bytes;
  return total;
}

void StateCache::forget(std::string_view session_id) {
  std::lock_guard lock(_mutex);
  if (auto it = _entries.find(session_id); it != _entries.end()) _entries.erase(it);
}

}  // namespace statefold::materialise
