// context: materialises what one stateless inference call sends, from a session's state at version v and its
// policy (spec section 6). Pure: no I/O, no clocks; the same state, policy and token counter give the same Context,
// and render.h turns it into byte-identical request bodies.
//
//   context::SessionState state = ...;              // the gateway's adapter fills it from the store
//   context::ByteCounter counter;                    // or the real BPE tokenizer behind TokenCounter
//   auto ctx = context::materialise(state, counter);
//   if (!ctx) return ctx.error();                    // e.g. the pinned sections alone exceed the budget
//   std::string body = providers::get(context::Provider::openai_chat).render(*ctx).value();  // connectors/providers
//
// What is kept: the system prompt, every pinned memory block and the summary always; unpinned memory blocks while
// they fit their share; then the newest history that fits, cut at whole-turn boundaries in large chunks so that
// the rendered prefix stays byte-identical from one call to the next (docs/connectors.md, "Context
// materialisation and renderers").
//
// Thread-safety: every function here is pure and safe to call concurrently. A Context points into the
// SessionState it was made from: keep the state alive and unchanged while the Context is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/base/result.h"

namespace statefold::context {

// Token counting is injected so that this library does not depend on a tokenizer. count() must be deterministic.
class TokenCounter {
 public:
  virtual ~TokenCounter() = default;
  virtual std::size_t count(std::string_view text) const = 0;
};

// ceil(bytes / 4): a deterministic stand-in for a BPE tokenizer, for tests, benchmarks and the offline echo demo.
class ByteCounter final : public TokenCounter {
 public:
  std::size_t count(std::string_view text) const override { return (text.size() + 3) / 4; }
};

// Fixed token costs added to the counted text, after tiktoken's accounting of the chat format.
inline constexpr std::size_t kMessageOverhead = 3;   // per rendered message or system block
inline constexpr std::size_t kReplyPriming = 3;      // once per request: the assistant reply's header
inline constexpr std::size_t kToolCallOverhead = 3;  // per tool call, on top of its id, name and arguments
inline constexpr std::size_t kNameOverhead = 1;      // when a message carries a name
inline constexpr std::size_t kImageTokens = 85;      // per image part (a low-detail image), whatever its URL

// Renderer/cut-algorithm version: part of what a receipt's request hash depends on. Bump it whenever the bytes
// rendered for the same state could change.
inline constexpr std::string_view kContextVersion = "statefold-context/1";

enum class Role : std::uint8_t { system = 0, developer = 1, user = 2, assistant = 3, tool = 4 };
enum class PartKind : std::uint8_t { text = 0, image_url = 1, file_ref = 2, json = 3 };

std::string_view role_name(Role role);

struct Part {
  PartKind kind = PartKind::text;
  std::string text;  // the text, the URL, the file reference or the JSON document
  std::string media_type;
};

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text as the model produced it
};

struct Message {
  std::uint64_t version = 0;  // the session version that appended it
  Role role = Role::user;
  std::vector<Part> content;
  std::vector<ToolCall> tool_calls;  // assistant only
  std::string tool_call_id;          // tool only: the call this result answers
  std::string name;
  // message_tokens(*this, counter) computed earlier with the same counter (the gateway caches it per version, as
  // a real tokenizer over 10,000 messages per call would not fit the latency target); counted when empty.
  std::optional<std::uint32_t> tokens;
};

struct MemoryBlock {
  std::string label;
  std::string value;
  bool pinned = false;
};

struct Summary {
  std::string text;
  std::uint64_t through_version = 0;  // covers the messages with version <= through_version
};

struct Policy {
  std::uint32_t token_budget = 128000;   // the model's context window: input plus output
  std::uint32_t output_reserve = 4096;   // kept free for the reply; the request's max output tokens
  // When the history overflows, cut so that the kept history uses at most (100 - cut_percent) % of the history
  // budget: cut_percent % stays free for the next turns, which then reuse the same prefix. 0 = sliding window
  // (drop only what overflows, a new prefix every turn). At most 90.
  std::uint32_t cut_percent = 50;
  // Unpinned memory blocks are kept (by label) while system prompt, memory and summary together stay within this
  // share of the input budget.
  std::uint32_t memory_percent = 25;
};

// The session as the connector sees it, decoupled from storage. History is in version order.
struct SessionState {
  std::string session_id;
  std::uint64_t version = 0;
  std::string model;
  std::string system_prompt;
  Policy policy;
  std::vector<MemoryBlock> memory;
  std::optional<Summary> summary;
  std::vector<Message> history;
  // Tokens the request's extra parameters take (tool definitions...: RenderOptions::extra), counted by the caller
  // with the same counter. Budgeted as a fixed section.
  std::size_t extra_tokens = 0;
};

// The cost of one message as materialise() counts it: kMessageOverhead + its parts + name + tool calls (+ the
// tool_call_id of a tool result). What Message::tokens caches.
std::size_t message_tokens(const Message& message, const TokenCounter& counter);

// --- The materialised context ---

// One history message as rendered. Tool calls without a result are left out (`calls` lists the rendered ones by
// index into message->tool_calls when not all are).
struct Item {
  const Message* message = nullptr;
  bool all_calls = true;
  std::vector<std::uint32_t> calls;  // used when !all_calls
  std::size_t tokens = 0;
};

struct MemoryEntry {
  std::string label;
  bool pinned = false;
  bool included = false;
  std::size_t tokens = 0;  // of its rendered text, without the memory section's message overhead
};

// What materialise() left out of the history, and why.
struct Cut {
  std::size_t messages = 0;          // messages dropped by the budget cut (oldest first)
  std::size_t tokens = 0;            // their tokens
  std::uint64_t first_version = 0;   // versions of the dropped range (0 when nothing was cut)
  std::uint64_t last_version = 0;
  std::size_t covered_by_summary = 0;       // messages left out because the summary covers them
  // Versions of tool results that answer no open call of the assistant message right before their run.
  std::vector<std::uint64_t> orphan_tool_results;
  std::vector<std::string> dangling_tool_calls;    // ids of tool calls that never got a result
  std::vector<std::string> memory_blocks;          // unpinned memory blocks left out
};

struct Context {
  const SessionState* state = nullptr;
  // Budget: input_budget = token_budget - output_reserve; history_budget = input_budget - fixed sections.
  std::size_t token_budget = 0;
  std::size_t output_reserve = 0;
  std::size_t input_budget = 0;
  std::size_t history_budget = 0;
  // Fixed sections, rendered first (each as one system message or block; empty = not rendered). Their token
  // counts include kMessageOverhead.
  std::string system_text;
  std::size_t system_tokens = 0;
  std::string memory_text;
  std::size_t memory_tokens = 0;
  std::vector<MemoryEntry> memory;  // pinned first, then unpinned; by label
  std::string summary_text;
  std::size_t summary_tokens = 0;
  std::size_t extra_tokens = 0;  // SessionState::extra_tokens
  // History, oldest first: whole turns, tool results right after their call.
  std::vector<Item> history;
  std::size_t history_tokens = 0;
  std::size_t total_tokens = 0;  // all sections + kReplyPriming; <= input_budget
  Cut cut;
};

// Fails when the policy leaves no input budget, when the fixed sections (system prompt, pinned memory, summary,
// extra_tokens) exceed it, or when the newest message (with its tool results) alone exceeds the history budget.
base::Result<Context> materialise(const SessionState& state, const TokenCounter& counter);
// The Context points into the state: a temporary would leave it dangling.
base::Result<Context> materialise(SessionState&& state, const TokenCounter& counter) = delete;

}  // namespace statefold::context
