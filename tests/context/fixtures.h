// Small hand-built sessions shared by the context tests.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "connectors/context/context.h"

namespace statefold::context::testing {

inline Message text_message(std::uint64_t version, Role role, std::string text) {
  Message m;
  m.version = version;
  m.role = role;
  m.content.push_back(Part{PartKind::text, std::move(text), {}});
  return m;
}

inline Message call_message(std::uint64_t version, std::vector<ToolCall> calls, std::string text = {}) {
  Message m;
  m.version = version;
  m.role = Role::assistant;
  if (!text.empty()) m.content.push_back(Part{PartKind::text, std::move(text), {}});
  m.tool_calls = std::move(calls);
  return m;
}

inline Message tool_result(std::uint64_t version, std::string call_id, std::string text) {
  Message m = text_message(version, Role::tool, std::move(text));
  m.tool_call_id = std::move(call_id);
  return m;
}

// A weather conversation: system prompt, a pinned and an unpinned memory block, a tool call and its result.
inline SessionState weather_session() {
  SessionState s;
  s.session_id = "s1";
  s.version = 6;
  s.model = "gpt-4o";
  s.system_prompt = "Be brief.";
  s.policy.token_budget = 1000;
  s.policy.output_reserve = 100;
  s.memory.push_back(MemoryBlock{"user", "Name: Ada", true});
  s.memory.push_back(MemoryBlock{"notes", "likes tea", false});
  s.history.push_back(text_message(2, Role::user, "What's the weather in Paris?"));
  s.history.push_back(call_message(3, {ToolCall{"call_1", "get_weather", R"({"city":"Paris"})"}}));
  s.history.push_back(tool_result(4, "call_1", "18C, sunny"));
  s.history.push_back(text_message(5, Role::assistant, "It is 18C and sunny."));
  s.history.push_back(text_message(6, Role::user, "Thanks!"));
  return s;
}

}  // namespace statefold::context::testing
