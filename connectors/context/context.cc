#include "connectors/context/context.h"

#include <algorithm>
#include <numeric>

namespace statefold::context {
namespace {

std::size_t part_tokens(const Part& part, const TokenCounter& counter) {
  return part.kind == PartKind::image_url ? kImageTokens : counter.count(part.text);
}

std::size_t call_tokens(const ToolCall& call, const TokenCounter& counter) {
  return kToolCallOverhead + counter.count(call.id) + counter.count(call.name) + counter.count(call.arguments);
}

std::size_t cached_tokens(const Message& message, const TokenCounter& counter) {
  return message.tokens ? *message.tokens : message_tokens(message, counter);
}

bool has_text(const Message& message) {
  return std::any_of(message.content.begin(), message.content.end(),
                     [](const Part& p) { return !p.text.empty(); });
}

// A tool group: an assistant message with tool calls and the run of tool messages right after it. A result
// belongs to the group when it answers one of its calls not answered yet; any other tool message is an orphan.
// Calls still unanswered when the run ends are dangling. Tool results anywhere else are orphans too: providers
// require results right after their call.
struct Group {
  std::size_t end = 0;                   // one past the group's last tool message
  std::vector<std::size_t> results;      // message indices of the results kept, in history order
  std::vector<std::size_t> orphans;      // message indices of tool messages in the run that answer nothing
  std::vector<std::uint8_t> answered;    // per call
  std::size_t answered_count = 0;
};

void scan_group(const std::vector<Message>& history, std::size_t i, Group& g) {
  const Message& call_message = history[i];
  g.results.clear();
  g.orphans.clear();
  g.answered.assign(call_message.tool_calls.size(), 0);
  g.answered_count = 0;
  std::size_t j = i + 1;
  for (; j < history.size() && history[j].role == Role::tool; ++j) {
    bool matched = false;
    for (std::size_t k = 0; k < call_message.tool_calls.size(); ++k) {
      if (!g.answered[k] && call_message.tool_calls[k].id == history[j].tool_call_id) {
        g.answered[k] = 1;
        ++g.answered_count;
        matched = true;
        break;
      }
    }
    (matched ? g.results : g.orphans).push_back(j);
  }
  g.end = j;
}

// An atom is what a cut never splits: one message, or an assistant message with its tool results.
struct Atom {
  std::size_t begin = 0;  // message index of its first message
  std::size_t tokens = 0;
  bool turn_start = false;  // starts with a user message: the preferred cut points
};

std::string memory_block_text(const MemoryBlock& block) {
  std::string out = "<memory label=\"";
  out += block.label;
  out += "\">\n";
  out += block.value;
  out += "\n</memory>";
  return out;
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::system: return "system";
    case Role::developer: return "developer";
    case Role::user: return "user";
    case Role::assistant: return "assistant";
    case Role::tool: return "tool";
  }
  return "user";
}

std::size_t message_tokens(const Message& message, const TokenCounter& counter) {
  std::size_t n = kMessageOverhead;
  for (const auto& part : message.content) n += part_tokens(part, counter);
  if (!message.name.empty()) n += counter.count(message.name) + kNameOverhead;
  for (const auto& call : message.tool_calls) n += call_tokens(call, counter);
  if (message.role == Role::tool) n += counter.count(message.tool_call_id);
  return n;
}

base::Result<Context> materialise(const SessionState& state, const TokenCounter& counter) {
  const Policy& policy = state.policy;
  if (policy.output_reserve >= policy.token_budget) {
    return base::make_error("context: the output reserve (" + std::to_string(policy.output_reserve) +
                            ") leaves nothing of the token budget (" + std::to_string(policy.token_budget) + ")");
  }
  if (policy.cut_percent > 90) return base::make_error("context: cut_percent must be at most 90");
  if (policy.memory_percent > 100) return base::make_error("context: memory_percent must be at most 100");

  Context ctx;
  ctx.state = &state;
  ctx.token_budget = policy.token_budget;
  ctx.output_reserve = policy.output_reserve;
  ctx.input_budget = policy.token_budget - policy.output_reserve;

  // Fixed sections: the system prompt, memory (pinned first, then by label), the summary.
  if (!state.system_prompt.empty()) {
    ctx.system_text = state.system_prompt;
    ctx.system_tokens = counter.count(ctx.system_text) + kMessageOverhead;
  }
  if (state.summary && !state.summary->text.empty()) {
    ctx.summary_text = "<summary>\n" + state.summary->text + "\n</summary>";
    ctx.summary_tokens = counter.count(ctx.summary_text) + kMessageOverhead;
  }
  std::vector<const MemoryBlock*> blocks;
  blocks.reserve(state.memory.size());
  for (const auto& block : state.memory) blocks.push_back(&block);
  std::sort(blocks.begin(), blocks.end(), [](const MemoryBlock* a, const MemoryBlock* b) {
    if (a->pinned != b->pinned) return a->pinned;
    if (a->label != b->label) return a->label < b->label;
    return a->value < b->value;
  });
  std::vector<std::string> texts;
  texts.reserve(blocks.size());
  std::size_t memory_estimate = 0;  // sum of block counts + one per joining newline + the section overhead
  const auto memory_cost = [&](std::size_t block_tokens) {
    return memory_estimate == 0 ? block_tokens + kMessageOverhead : block_tokens + 1;
  };
  const std::size_t memory_limit = ctx.input_budget * policy.memory_percent / 100;
  for (const MemoryBlock* block : blocks) {
    std::string text = memory_block_text(*block);
    MemoryEntry entry{block->label, block->pinned, false, counter.count(text)};
    const std::size_t fixed = ctx.system_tokens + ctx.summary_tokens + memory_estimate;
    if (block->pinned || fixed + memory_cost(entry.tokens) <= memory_limit) {
      entry.included = true;
      memory_estimate += memory_cost(entry.tokens);
      texts.push_back(std::move(text));
    } else {
      ctx.cut.memory_blocks.push_back(block->label);
    }
    ctx.memory.push_back(std::move(entry));
  }
  for (std::size_t i = 0; i < texts.size(); ++i) {
    if (i > 0) ctx.memory_text += '\n';
    ctx.memory_text += texts[i];
  }
  if (!ctx.memory_text.empty()) ctx.memory_tokens = counter.count(ctx.memory_text) + kMessageOverhead;

  ctx.extra_tokens = state.extra_tokens;
  const std::size_t fixed =
      ctx.system_tokens + ctx.memory_tokens + ctx.summary_tokens + ctx.extra_tokens + kReplyPriming;
  if (fixed > ctx.input_budget) {
    return base::make_error("context: the system prompt, pinned memory, summary and extra parameters need " +
                            std::to_string(fixed) + " tokens; the input budget is " +
                            std::to_string(ctx.input_budget));
  }
  ctx.history_budget = ctx.input_budget - fixed;
  const std::size_t budget = ctx.history_budget;

  // History after the summary, as atoms.
  const auto& history = state.history;
  std::size_t first = 0;
  if (state.summary) {
    const std::uint64_t through = state.summary->through_version;
    first = static_cast<std::size_t>(
        std::partition_point(history.begin(), history.end(),
                             [through](const Message& m) { return m.version <= through; }) -
        history.begin());
  }
  ctx.cut.covered_by_summary = first;

  std::vector<Atom> atoms;
  atoms.reserve(history.size() - first);
  Group group;
  for (std::size_t i = first; i < history.size();) {
    const Message& m = history[i];
    if (m.role == Role::tool) {  // an orphan: not rendered, not an atom
      ++i;
      continue;
    }
    Atom atom{i, cached_tokens(m, counter), m.role == Role::user};
    if (m.role == Role::assistant && !m.tool_calls.empty()) {
      scan_group(history, i, group);
      for (std::size_t k = 0; k < m.tool_calls.size(); ++k) {
        if (!group.answered[k]) atom.tokens -= std::min(atom.tokens, call_tokens(m.tool_calls[k], counter));
      }
      for (std::size_t r : group.results) atom.tokens += cached_tokens(history[r], counter);
      i = group.end;
      if (group.answered_count == 0 && !has_text(m)) continue;  // nothing left to render
    } else {
      ++i;
    }
    atoms.push_back(atom);
  }

  // The cut (see docs/connectors.md). Replays the history's growth atom by atom: whenever the kept part overflows
  // the budget, the cut moves forward to the first turn start that leaves at most (100 - cut_percent) % of the
  // budget in use (or the first atom start when the newest turn alone is larger). The cut therefore depends only
  // on the history up to each overflow: appending does not move it until the budget overflows again, and every
  // call in between renders the same prefix.
  const std::size_t m = atoms.size();
  if (m > 0 && atoms.back().tokens > budget) {
    return base::make_error("context: the newest message (version " +
                            std::to_string(history[atoms.back().begin].version) + ") needs " +
                            std::to_string(atoms.back().tokens) + " tokens; the history budget is " +
                            std::to_string(budget));
  }
  std::vector<std::size_t> prefix(m + 1, 0);
  for (std::size_t i = 0; i < m; ++i) prefix[i + 1] = prefix[i] + atoms[i].tokens;
  std::vector<std::size_t> next_turn(m + 1, m);
  for (std::size_t i = m; i-- > 0;) next_turn[i] = atoms[i].turn_start ? i : next_turn[i + 1];
  const std::size_t target = budget * (100 - policy.cut_percent) / 100;
  std::size_t cut = 0;
  std::size_t low = 0;  // smallest atom start that brings the kept part under target: only ever grows
  for (std::size_t e = 0; e < m; ++e) {
    if (prefix[e + 1] - prefix[cut] <= budget) continue;
    if (atoms[e].tokens > budget) {  // can never be rendered: everything up to it goes
      cut = e + 1;
      continue;
    }
    low = std::max(low, cut + 1);
    while (low < e && prefix[e + 1] - prefix[low] > target) ++low;
    cut = next_turn[low] <= e ? next_turn[low] : low;
  }

  // Record the cut, then build the kept items.
  // Nothing cut: orphans before the first atom are reported as orphans, not as cut.
  const std::size_t kept_begin = cut == 0 ? first : cut < m ? atoms[cut].begin : history.size();
  ctx.cut.messages = kept_begin - first;
  ctx.cut.tokens = prefix[cut];
  if (kept_begin > first) {
    ctx.cut.first_version = history[first].version;
    ctx.cut.last_version = history[kept_begin - 1].version;
  }
  ctx.history.reserve(history.size() - kept_begin);
  for (std::size_t i = kept_begin; i < history.size();) {
    const Message& msg = history[i];
    if (msg.role == Role::tool) {
      ctx.cut.orphan_tool_results.push_back(msg.version);
      ++i;
      continue;
    }
    if (!(msg.role == Role::assistant && !msg.tool_calls.empty())) {
      ctx.history.push_back(Item{&msg, true, {}, cached_tokens(msg, counter)});
      ctx.history_tokens += ctx.history.back().tokens;
      ++i;
      continue;
    }
    scan_group(history, i, group);
    for (std::size_t o : group.orphans) ctx.cut.orphan_tool_results.push_back(history[o].version);
    Item item{&msg, group.answered_count == msg.tool_calls.size(), {}, cached_tokens(msg, counter)};
    for (std::size_t k = 0; k < msg.tool_calls.size(); ++k) {
      if (group.answered[k]) {
        if (!item.all_calls) item.calls.push_back(static_cast<std::uint32_t>(k));
      } else {
        ctx.cut.dangling_tool_calls.push_back(msg.tool_calls[k].id);
        item.tokens -= std::min(item.tokens, call_tokens(msg.tool_calls[k], counter));
      }
    }
    i = group.end;
    if (group.answered_count == 0 && !has_text(msg)) continue;
    ctx.history_tokens += item.tokens;
    ctx.history.push_back(std::move(item));
    for (std::size_t r : group.results) {
      ctx.history.push_back(Item{&history[r], true, {}, cached_tokens(history[r], counter)});
      ctx.history_tokens += ctx.history.back().tokens;
    }
  }
  ctx.total_tokens = fixed + ctx.history_tokens;
  return ctx;
}

}  // namespace statefold::context
