// Writes what the protocol writers produce for the fixtures into a directory, for sdk_parse_check.py to validate
// with the official openai Python SDK's models. Test-only.
//   protocol_samples DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "connectors/protocol/protocol.h"
#include "protocol/fixtures.h"
#include "providers/dispatch.h"

namespace protocol = statefold::protocol;
using statefold::context::Provider;

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const std::string& text) {
  std::ofstream out(dir / name, std::ios::binary);
  out << text;
}

protocol::ResponseMeta meta(const std::string& id) {
  protocol::ResponseMeta m;
  m.id = id;
  m.model = "gpt-4.1";
  m.created_at = 1741476542;
  m.instructions = "be brief";
  m.params.tools.push_back(protocol::Tool{"get_weather", "Weather now", R"({"type":"object","properties":{}})", true});
  m.params.temperature = 0.7;
  m.params.metadata["session_id"] = "alice";
  return m;
}

// Stream `events` through the parser into both writers; also the whole-body outputs of the assembled reply.
bool sample(const std::filesystem::path& dir, const std::string& name, Provider provider,
            const protocol::testing::Events& events) {
  statefold::providers::testing::StreamParser parser(provider);
  protocol::ChatChunkWriter chat("chatcmpl-" + name, "gpt-4o", 1741569952, true);
  protocol::ResponseEventWriter resp(meta("resp_" + name));
  std::string chat_out = chat.start();
  std::string resp_out = resp.start();
  for (const auto& [event, data] : events) {
    auto deltas = parser.feed(event, data);
    if (!deltas.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(), deltas.error().message.c_str());
      return false;
    }
    for (const auto& d : *deltas) {
      chat_out += chat.delta(d);
      resp_out += resp.delta(d);
    }
  }
  chat_out += chat.finish(parser.reply());
  resp_out += resp.finish(parser.reply());
  write(dir, "chunks_" + name + ".sse", chat_out);
  write(dir, "events_" + name + ".sse", resp_out);
  write(dir, "completion_" + name + ".json",
        protocol::chat_completion_json(parser.reply(), "chatcmpl-" + name, "gpt-4o", 1741569952));
  write(dir, "response_" + name + ".json", protocol::response_json(parser.reply(), meta("resp_" + name)));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: protocol_samples DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  namespace t = protocol::testing;
  bool ok = sample(dir, "chat_text", Provider::openai_chat, t::chat_text_stream()) &&
            sample(dir, "chat_tools", Provider::openai_chat, t::chat_tool_stream()) &&
            sample(dir, "responses_text", Provider::openai_responses, t::responses_text_stream()) &&
            sample(dir, "responses_tools", Provider::openai_responses, t::responses_tool_stream()) &&
            sample(dir, "anthropic_text", Provider::anthropic, t::anthropic_text_stream()) &&
            sample(dir, "anthropic_tools", Provider::anthropic, t::anthropic_tool_stream());
  // A reply built whole (the echo provider's path): start() + finish() only.
  protocol::Reply echo;
  echo.text = "echo: I received 3 messages";
  echo.finish_reason = "stop";
  echo.usage = protocol::Usage{30, 7, 0, 0};
  protocol::ChatChunkWriter chat("chatcmpl-echo", "echo", 1, false);
  std::string out = chat.start();
  write(dir, "chunks_echo.sse", out + chat.finish(echo));
  protocol::ResponseEventWriter resp(meta("resp_echo"));
  out = resp.start();  // before finish(): sequence numbers follow the calls
  write(dir, "events_echo.sse", out + resp.finish(echo));
  // Cut short, and failed.
  echo.finish_reason = "length";
  write(dir, "response_incomplete.json", protocol::response_json(echo, meta("resp_inc")));
  protocol::ResponseEventWriter inc(meta("resp_inc"));
  out = inc.start();
  write(dir, "events_incomplete.sse", out + inc.finish(echo));
  protocol::ResponseMeta failed = meta("resp_failed");
  failed.status = "failed";
  failed.error_code = "server_error";
  failed.error_message = "upstream: overloaded";
  write(dir, "response_failed.json", protocol::response_json(protocol::Reply{}, failed));
  protocol::ResponseEventWriter broken(meta("resp_broken"));
  out = broken.start();
  out += broken.delta(protocol::Delta{"Half an ans", -1, {}, {}, {}});
  protocol::Reply partial;
  partial.text = "Half an ans";
  write(dir, "events_failed.sse", out + broken.fail(partial, "overloaded", "upstream: overloaded"));
  write(dir, "error.json", protocol::openai_error_json("messages[2].role: bad", "invalid_request_error"));
  return ok ? 0 : 1;
}
