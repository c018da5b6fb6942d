// materialise: stored session state -> the request a model is sent. The one place that decides what a request looked
// like, for the gateway (which sends it and writes the receipt) and for `statefold audit` (which renders it again
// from the receipt and checks the hash): both go through render() with the same RenderSpec, so the bytes agree.
// Reads a fold::Reader and the tokenizer's rank tables; nothing else.
//
//   auto state = materialise::load_state(store_reader, "chat-42", 17);            // the session at version 17
//   materialise::RenderSpec spec{.provider = context::Provider::openai_chat, .model = "gpt-4o"};
//   auto rendered = materialise::render(std::move(*state), spec);
//   receipt.request_hash = rendered->hash;  receipt.render = spec.to_json();
//
// Thread-safety: free functions are safe from any thread; a StateCache serialises its users per session.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "connectors/context/context.h"
#include "connectors/context/render.h"
#include "engine/base/result.h"
#include "engine/fold/kv.h"
#include "statefold/schema/events_generated.h"

namespace statefold::materialise {

// What, besides the session's state, decides the rendered bytes. Its canonical JSON is the receipt's `render`.
struct RenderSpec {
  context::Provider provider = context::Provider::openai_chat;
  std::string model;             // the request's model; empty: the session's
  std::string tokenizer;         // "o200k_base" | "cl100k_base"; empty: from the session's policy, else the model
  double margin = 1.0;           // token counts are multiplied by this (providers without a public tokenizer)
  std::string extra;             // canonical JSON object of pass-through parameters (context::RenderOptions), or ""
  std::uint64_t max_output_tokens = 0;  // the client's cap on the reply, as asked (see output_limit)
  std::string instructions;      // this request's system prompt in place of the session's (Responses instructions)
  // The reply's token limit: the output reserve of the budget and the max tokens the upstream is sent (the client's
  // cap within the endpoint's maximum). 0: the policy's reserve, lowered to max_output_tokens when that is smaller,
  // which is how receipts written before this field were rendered.
  std::uint64_t output_limit = 0;

  std::string to_json() const;
  static base::Result<RenderSpec> from_json(std::string_view text);
};

// A stored Message event as the context library takes it.
context::Message stored_message(std::uint64_t version, const schema::Message& message);

// The session at `version` as the context library takes it: configuration, memory and summary as they were then,
// and its messages up to that version. Errors: no such session, version out of range.
base::Result<context::SessionState> load_state(const fold::Reader& reader, std::string_view session_id,
                                               std::uint64_t version);

struct Rendered {
  context::Context context;  // points into the state it was made from
  std::string body;
  std::string hash;          // hex SHA-256 of body: InferenceReceipt.request_hash
  std::string tokenizer;     // the encoding that counted
  std::string echo;          // the echo provider's reply (rendered while the request's overrides applied)
};

// Materialises and renders `state` (kept alive and unchanged by the caller while the result is used), counting
// with the spec's tokenizer, else the one OpenAI uses for the model, else o200k_base (loaded once per process). Messages
// token counts are cached in the state: `counted_with` names the counter they came from (a different counter
// clears them first), so a long session is counted once, not on every call.
base::Result<Rendered> render(context::SessionState& state, const RenderSpec& spec, std::string& counted_with);

// The gateway's per-session cache of SessionState: a long session's messages are read from the store and counted
// once, then each call only adds the versions since. with_state() hands the state at exactly `version` to `use`
// under the session's lock (the state must not outlive the call).
class StateCache {
 public:
  // Bounded memory: at most `max_sessions` sessions and about `max_bytes` of their messages' text; the least
  // recently used sessions go first (read from the store again if they come back).
  explicit StateCache(std::size_t max_sessions = 256, std::size_t max_bytes = 64 << 20)
      : _max_sessions(max_sessions), _max_bytes(max_bytes) {}
  base::Result<void> with_state(const fold::Reader& reader, std::string_view session_id, std::uint64_t version,
                                const std::function<void(context::SessionState&, std::string& counted_with)>& use);
  void forget(std::string_view session_id);
  std::size_t sessions() const;  // cached now
  std::size_t bytes() const;     // their messages, about

 private:
  struct Entry {
    std::mutex mutex;
    context::SessionState state;
    std::string counted_with;
    bool loaded = false;
    std::uint64_t last_used = 0;
    std::size_t measured = 0;           // history[0, measured) is counted in bytes
    std::atomic<std::size_t> bytes{0};  // of those messages
  };
  void evict(const std::shared_ptr<Entry>& keep);
  std::size_t _max_sessions;
  std::size_t _max_bytes;
  std::uint64_t _uses = 0;
  mutable std::mutex _mutex;
  std::map<std::string, std::shared_ptr<Entry>, std::less<>> _entries;
};

}  // namespace statefold::materialise
