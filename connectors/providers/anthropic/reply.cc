// Messages replies: a whole message, or its event stream (message_start .. message_stop). Usage counts cache reads
// and writes apart from input_tokens; ours includes them.
#include "connectors/providers/anthropic/anthropic.h"
#include "connectors/providers/internal/json.h"

namespace statefold::providers::anthropic {
namespace {

using protocol::Delta;
using protocol::Reply;
using protocol::ToolCall;
using protocol::Usage;
using namespace internal;  // NOLINT: the module's own helpers

// Tool arguments as parse_reply and the stream decoder both write them: the input object compact, in the
// provider's key order.
std::string arguments_text(const value& input) { return json::serialize(input); }

std::string anthropic_finish(std::string_view reason) {
  if (reason == "max_tokens" || reason == "model_context_window_exceeded") return "length";
  if (reason == "tool_use") return "tool_calls";
  if (reason == "refusal") return "content_filter";
  return "stop";  // end_turn, stop_sequence, pause_turn
}

// Fields absent from `u` (a message_delta usage carries only what changed) keep their value.
void anthropic_usage(const object& u, Usage& usage, std::uint64_t& plain_input) {
  if (member(u, "input_tokens") != nullptr) plain_input = uint_or(u, "input_tokens");
  if (member(u, "cache_read_input_tokens") != nullptr) usage.cached_tokens = uint_or(u, "cache_read_input_tokens");
  if (member(u, "cache_creation_input_tokens") != nullptr) {
    usage.cache_write_tokens = uint_or(u, "cache_creation_input_tokens");
  }
  if (member(u, "output_tokens") != nullptr) usage.output_tokens = uint_or(u, "output_tokens");
  usage.input_tokens = plain_input + usage.cached_tokens + usage.cache_write_tokens;
}

base::Result<Reply> anthropic_reply(const object& o) {
  if (string_or(o, "type") == "error") return base::make_error(error_text(o));
  Reply r;
  r.upstream_id = string_or(o, "id");
  r.model = string_or(o, "model");
  r.finish_reason = anthropic_finish(string_or(o, "stop_reason"));
  if (const array* content = array_member(o, "content")) {
    for (const value& block : *content) {
      if (!block.is_object()) continue;
      const object& b = block.get_object();
      const std::string type = string_or(b, "type");
      if (type == "text") {
        r.text += string_or(b, "text");
      } else if (type == "tool_use") {
        const value* input = member(b, "input");
        r.tool_calls.push_back(ToolCall{string_or(b, "id"), string_or(b, "name"),
                                        input == nullptr ? std::string("{}") : arguments_text(*input)});
      }
    }
  }
  std::uint64_t plain = 0;
  if (const object* u = object_member(o, "usage")) anthropic_usage(*u, r.usage, plain);
  return r;
}

// Tool arguments come as one piece when their block ends, re-serialised as parse_reply() writes tool_use.input.
class AnthropicDecoder final : public StreamDecoder {
 protected:
  base::Result<std::vector<Delta>> decode(std::string_view event_name, std::string_view data) override {
    std::vector<Delta> out;
    auto v = parse(data, "anthropic stream event");
    if (!v) return v.error();
    if (!v->is_object()) return base::make_error("anthropic stream event: not an object");
    const object& o = v->get_object();
    std::string type = string_or(o, "type");
    if (type.empty()) type = std::string(event_name);
    if (type == "error") return base::make_error(error_text(o));
    if (type == "message_start") {
      if (const object* m = object_member(o, "message")) {
        _reply.upstream_id = string_or(*m, "id");
        _reply.model = string_or(*m, "model");
        if (const object* u = object_member(*m, "usage")) anthropic_usage(*u, _reply.usage, _plain_input);
      }
    } else if (type == "content_block_start") {
      const object* b = object_member(o, "content_block");
      if (b == nullptr) return out;
      const std::string btype = string_or(*b, "type");
      if (btype == "tool_use") {
        const int slot = static_cast<int>(_tool_keys.size());
        _tool_keys.push_back(static_cast<std::int64_t>(uint_or(o, "index")));
        _reply.tool_calls.push_back(ToolCall{string_or(*b, "id"), string_or(*b, "name"), {}});
        _json.emplace_back();
        out.push_back(Delta{{}, slot, _reply.tool_calls.back().id, _reply.tool_calls.back().name, {}});
      } else if (btype == "text") {
        std::string text = string_or(*b, "text");
        if (!text.empty()) {
          _reply.text += text;
          out.push_back(Delta{std::move(text), -1, {}, {}, {}});
        }
      }
    } else if (type == "content_block_delta") {
      const object* d = object_member(o, "delta");
      if (d == nullptr) return out;
      const std::string dtype = string_or(*d, "type");
      if (dtype == "text_delta") {
        std::string text = string_or(*d, "text");
        if (!text.empty()) {
          _reply.text += text;
          out.push_back(Delta{std::move(text), -1, {}, {}, {}});
        }
      } else if (dtype == "input_json_delta") {
        const int slot = tool_slot(static_cast<std::int64_t>(uint_or(o, "index")));
        if (slot < 0) return base::make_error("anthropic stream: input_json_delta for a block that is no tool_use");
        _json[static_cast<std::size_t>(slot)] += string_or(*d, "partial_json");
      }
    } else if (type == "content_block_stop") {
      const int slot = tool_slot(static_cast<std::int64_t>(uint_or(o, "index")));
      if (slot >= 0) {
        // As parse_reply writes tool_use.input: the JSON re-serialised compactly ({} when nothing came).
        const std::string& text = _json[static_cast<std::size_t>(slot)];
        std::string& args = _reply.tool_calls[static_cast<std::size_t>(slot)].arguments;
        if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
          args = "{}";
        } else {
          boost::system::error_code ec;
          value input = json::parse(text, ec);
          args = ec ? text : arguments_text(input);
        }
        // Sent whole, once re-serialised: the pieces Anthropic streams have other whitespace than the arguments
        // parse_reply() gives, and the client must see the arguments statefold stores.
        out.push_back(Delta{{}, slot, {}, {}, args});
      }
    } else if (type == "message_delta") {
      if (const object* d = object_member(o, "delta")) {
        if (const value* s = member(*d, "stop_reason"); s != nullptr && s->is_string()) {
          _reply.finish_reason = anthropic_finish(s->get_string());
        }
      }
      if (const object* u = object_member(o, "usage")) anthropic_usage(*u, _reply.usage, _plain_input);
    } else if (type == "message_stop") {
      if (_reply.finish_reason.empty()) _reply.finish_reason = _reply.tool_calls.empty() ? "stop" : "tool_calls";
      _finished = true;
    }
    return out;
  }

 private:
  std::vector<std::string> _json;  // input_json_delta pieces of each tool call
  std::uint64_t _plain_input = 0;  // input_tokens without the cache reads and writes
};

}  // namespace

base::Result<Reply> Anthropic::parse_reply(std::string_view body) const {
  auto v = reply_object(body, name());
  if (!v) return v.error();
  return anthropic_reply(v->get_object());
}

std::unique_ptr<StreamDecoder> Anthropic::stream_decoder() const { return std::make_unique<AnthropicDecoder>(); }

}  // namespace statefold::providers::anthropic
