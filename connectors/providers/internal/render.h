// Private to the providers module: what several renderers share. Keys are literals written in a fixed order through
// the one JSON writer (base/json_writer.h), so that the same Context always gives the same bytes.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>

#include "connectors/context/context.h"
#include "engine/base/json_writer.h"
#include "engine/base/result.h"

namespace statefold::providers::internal {

using base::json::key;
using base::json::num;
using base::json::str;

// The extra request parameters as canonical members (`"k":v,...`, no braces), or an error naming a reserved key.
base::Result<std::string> extra_members(std::string_view extra, std::initializer_list<std::string_view> reserved);

bool has_image(const context::Message& m);

// A message's parts as one text, joined by "\n"; an image becomes "[image: URL]". Avoids a copy for one part.
std::string_view joined_text(const context::Message& m, std::string& scratch);

template <typename F>
void for_each_call(const context::Item& item, F&& f) {
  const auto& calls = item.message->tool_calls;
  if (item.all_calls) {
    for (const auto& call : calls) f(call);
  } else {
    for (std::uint32_t k : item.calls) f(calls[k]);
  }
}

bool item_has_calls(const context::Item& item);

// Tool call arguments where the API wants an object (Anthropic's tool_use.input, Bedrock's toolUse.input): the
// arguments (canonical) when they are one, {} when empty, otherwise the text under "raw_arguments".
void object_arguments(std::string& out, std::string_view arguments);

// `{"model":..,"<max_key>":<output reserve>`: every body's head.
void open_body(std::string& out, const context::Context& ctx, std::string_view max_key);
void append_extras(std::string& out, const std::string& extras);

// A reserve for the body's size.
std::size_t estimate(const context::Context& ctx);

}  // namespace statefold::providers::internal
