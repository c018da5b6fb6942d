// The gateway in process: its turn pipeline over an in-memory fold (testing::MemorySink) and the offline echo
// provider, driven through Gateway::handle with http::Requests. No broker, no network (the streaming tests use a
// loopback http::Server, since a BodyStream is read only by the server that sends it).
#include "connectors/gateway/gateway.h"
#include "connectors/gateway/internal/ids.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "engine/base/hex.h"
#include "engine/fold/fold.h"
#include "engine/fold/read.h"
#include "statefold/schema/events_generated.h"
#include "support/memory_fold.h"
#include "support/memory_sink.h"

namespace statefold::gateway {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

// The state the gateway reads: copies of the sink's store, owned here unless a test says otherwise.
class MemoryState final : public StateSource {
 public:
  explicit MemoryState(const testing::MemorySink& sink) : _sink(sink) {}
  std::unique_ptr<fold::Reader> snapshot() const override { return _sink.snapshot(); }
  runtime::Ownership ownership(std::string_view) const override {
    std::lock_guard lock(_mutex);
    return _ownership;
  }
  void set_ownership(runtime::Ownership ownership) {
    std::lock_guard lock(_mutex);
    _ownership = ownership;
  }

 private:
  const testing::MemorySink& _sink;
  mutable std::mutex _mutex;
  runtime::Ownership _ownership;
};

// One accepted event of a session's history, as the tests look at it.
struct Entry {
  std::uint64_t version = 0;
  std::string type;  // "Message", "InferenceReceipt", ...
  std::string role;  // messages
  std::string text;  // messages: their text parts, joined
  std::string source;
  std::uint64_t state_version = 0;  // receipts
  std::string error;                // receipts
  std::string render;               // receipts
};

std::string header_value(const http::Response& response, std::string_view name) {
  for (const auto& [k, v] : response.headers) {
    if (k == name) return v;
  }
  return "";
}

// A request as the HTTP server hands it over: the query split off the path (k=v&k=v, no escapes in these tests).
http::Request request_for(std::string method, std::string path) {
  http::Request request;
  request.method = std::move(method);
  if (const auto q = path.find('?'); q != std::string::npos) {
    std::string_view query = std::string_view(path).substr(q + 1);
    while (!query.empty()) {
      const auto amp = query.find('&');
      const auto pair = query.substr(0, amp);
      const auto eq = pair.find('=');
      request.query[std::string(pair.substr(0, eq))] =
          eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
      query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    }
    path.resize(q);
  }
  request.path = std::move(path);
  return request;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto router = upstream::Router::make(offline_routing());
    ASSERT_TRUE(router.ok()) << router.error().message;
    Options options{std::move(*router), 4,
                    [this](std::string_view endpoint, int status, std::chrono::nanoseconds, std::chrono::nanoseconds) {
                      std::lock_guard lock(turns_mutex);
                      turns.emplace_back(std::string(endpoint), status);
                    },
                    1 << 20, 1500ms, "gateway-test-id-secret", {}};
    gateway = std::make_unique<Gateway>(std::move(options), state, sink);
  }

  http::Response call(std::string method, std::string path, std::string body = {},
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
    http::Request request = request_for(std::move(method), std::move(path));
    request.headers = std::move(headers);
    request.body = std::move(body);
    auto answered = std::make_shared<std::promise<http::Response>>();
    auto future = answered->get_future();
    gateway->handle(std::move(request), auth::unrestricted(), [answered](http::Response r) { answered->set_value(std::move(r)); });
    if (future.wait_for(30s) != std::future_status::ready) {
      ADD_FAILURE() << "no answer in 30 s";
      return {};
    }
    return future.get();
  }

  http::Response chat(const std::string& session, const std::string& messages) {
    return call("POST", "/v1/chat/completions", R"({"model":"echo","messages":)" + messages + "}",
                {{"x-session-id", session}, {"content-type", "application/json"}});
  }
  http::Response responses(const std::string& body) { return call("POST", "/v1/responses", body); }

  std::optional<state::SessionHeaderT> header(const std::string& session) {
    return fold::load_header(*sink.snapshot(), session);
  }
  std::uint64_t version(const std::string& session) {
    auto h = header(session);
    return h ? h->version : 0;
  }

  std::vector<Entry> history(const std::string& session) {
    std::vector<Entry> out;
    auto snapshot = sink.snapshot();
    auto read = fold::visit_history(*snapshot, session, {}, [&](const fold::HistoryRecord& r) {
      Entry e;
      e.version = r.version();
      e.type = codec::payload_type_name(static_cast<std::uint8_t>(r.event.payload_type()));
      if (r.event.source() != nullptr) e.source = r.event.source()->str();
      if (const auto* m = r.event.payload_as_Message()) {
        e.role = schema::EnumNameRole(m->role());
        if (m->content() != nullptr) {
          for (const auto* part : *m->content()) {
            if (part->text() != nullptr) e.text += part->text()->str();
          }
        }
      }
      if (const auto* receipt = r.event.payload_as_InferenceReceipt()) {
        e.state_version = receipt->state_version();
        if (receipt->error() != nullptr) e.error = receipt->error()->str();
        if (receipt->render() != nullptr) e.render = receipt->render()->str();
      }
      out.push_back(std::move(e));
      return true;
    });
    EXPECT_TRUE(read.ok()) << read.error().message;
    return out;
  }

  // Types of the history, "1 SessionOpened, 2 Message(user) ...", for readable failures.
  std::string outline(const std::string& session) {
    std::string out;
    for (const auto& e : history(session)) {
      out += (out.empty() ? "" : ", ") + std::to_string(e.version) + " " + e.type;
      if (!e.role.empty()) out += "(" + e.role + ")";
    }
    return out;
  }

  testing::MemorySink sink;
  MemoryState state{sink};
  const internal::IdSeal ids{"gateway-test-id-secret"};  // the gateway's, to name and open its ids
  std::mutex turns_mutex;
  std::vector<std::pair<std::string, int>> turns;  // Options::on_turn: (endpoint, status)
  std::unique_ptr<Gateway> gateway;  // last: stops before the state it reads goes
};

json::value parse(const http::Response& response) {
  boost::system::error_code ec;
  auto v = json::parse(response.body, ec);
  EXPECT_FALSE(ec) << "not JSON: " << response.body;
  return v;
}

std::string reply_text(const http::Response& response) {
  auto v = parse(response);
  return std::string(v.at("choices").at(0).at("message").at("content").as_string());
}

// The text of a Responses reply: every output_text part of every message.
std::string output_text(const json::value& v) {
  std::string out;
  for (const auto& item : v.at("output").as_array()) {
    if (item.at("type").as_string() != "message") continue;
    for (const auto& part : item.at("content").as_array()) {
      if (part.at("type").as_string() == "output_text") out += part.at("text").as_string();
    }
  }
  return out;
}

// An error in OpenAI's shape, with this status and code, telling OpenAI's SDKs whether to retry it; its message.
std::string expect_openai_error(const http::Response& response, int status, std::string_view code,
                                std::string_view should_retry = "false") {
  EXPECT_EQ(response.status, status) << response.body;
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(header_value(response, "x-should-retry"), should_retry) << response.status;
  auto v = parse(response);
  if (!v.is_object() || !v.as_object().contains("error") || !v.at("error").is_object()) {
    ADD_FAILURE() << "not an OpenAI error: " << response.body;
    return "";
  }
  const auto& error = v.at("error").as_object();
  EXPECT_TRUE(error.contains("message") && error.at("message").is_string()) << response.body;
  EXPECT_TRUE(error.contains("type") && error.at("type").is_string()) << response.body;
  EXPECT_TRUE(error.contains("param")) << response.body;
  EXPECT_TRUE(error.contains("code")) << response.body;
  if (code.empty()) {
    EXPECT_TRUE(error.at("code").is_null()) << response.body;
  } else {
    EXPECT_EQ(error.at("code"), json::value(code)) << response.body;
  }
  return error.contains("message") && error.at("message").is_string() ? std::string(error.at("message").as_string())
                                                                        : "";
}

bool contains(std::string_view text, std::string_view piece) { return text.find(piece) != std::string_view::npos; }

// --- Chat completions ---

TEST_F(GatewayTest, ChatOpensASessionAndContinuesIt) {
  auto first = chat("chat-1", R"([{"role":"user","content":"hello there"}])");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(header_value(first, "x-session-id"), "chat-1");
  EXPECT_EQ(header_value(first, "x-statefold-state-version"), "2");  // opened, then the user's message
  EXPECT_EQ(header_value(first, "x-statefold-request-hash").size(), 64u);
  const std::string reply1 = reply_text(first);
  EXPECT_TRUE(contains(reply1, "echo: I received")) << reply1;
  EXPECT_TRUE(contains(reply1, "- history: 1 messages")) << reply1;
  EXPECT_TRUE(contains(reply1, "(versions 2..2)")) << reply1;
  EXPECT_TRUE(contains(reply1, R"(Last user message: "hello there")")) << reply1;
  auto body = parse(first);
  EXPECT_EQ(body.at("object"), "chat.completion");
  EXPECT_EQ(body.at("model"), "echo");
  EXPECT_EQ(body.at("choices").at(0).at("finish_reason"), "stop");

  // Opened, the input, the receipt of the call, the reply: all folded by the time the answer came.
  auto h1 = history("chat-1");
  ASSERT_EQ(h1.size(), 4u) << outline("chat-1");
  EXPECT_EQ(h1[0].type, "SessionOpened");
  EXPECT_EQ(h1[1].type, "Message");
  EXPECT_EQ(h1[1].role, "user");
  EXPECT_EQ(h1[1].text, "hello there");
  EXPECT_EQ(h1[2].type, "InferenceReceipt");
  EXPECT_EQ(h1[2].state_version, 2u);
  EXPECT_EQ(h1[2].error, "");
  EXPECT_FALSE(h1[2].render.empty());
  EXPECT_EQ(h1[3].type, "Message");
  EXPECT_EQ(h1[3].role, "assistant");
  EXPECT_EQ(h1[3].text, reply1);
  for (const auto& e : h1) EXPECT_EQ(e.source, "gateway") << e.version;
  auto session = header("chat-1");
  ASSERT_TRUE(session);
  EXPECT_EQ(session->version, 4u);
  EXPECT_EQ(session->model, "echo");
  EXPECT_EQ(session->receipts, 1u);

  // The second turn sends only its new message; the context holds the first exchange.
  auto second = chat("chat-1", R"([{"role":"user","content":"and again"}])");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(header_value(second, "x-statefold-state-version"), "5");
  EXPECT_NE(header_value(second, "x-statefold-request-hash"), header_value(first, "x-statefold-request-hash"));
  const std::string reply2 = reply_text(second);
  EXPECT_TRUE(contains(reply2, "- history: 3 messages")) << reply2;
  EXPECT_TRUE(contains(reply2, "(versions 2..5)")) << reply2;
  EXPECT_TRUE(contains(reply2, R"(Last user message: "and again")")) << reply2;

  auto h2 = history("chat-1");
  ASSERT_EQ(h2.size(), 7u) << outline("chat-1");
  EXPECT_EQ(h2[4].role, "user");
  EXPECT_EQ(h2[4].text, "and again");
  EXPECT_EQ(h2[5].type, "InferenceReceipt");
  EXPECT_EQ(h2[5].state_version, 5u);
  EXPECT_EQ(h2[6].role, "assistant");
  EXPECT_EQ(h2[6].text, reply2);
  EXPECT_EQ(version("chat-1"), 7u);

  // The new session was opened with expected version 0, the second input on the version it was read at: each
  // input went as one conditional append, each outcome (receipt and reply) as one more.
  auto calls = sink.calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0].events, 2u);
  EXPECT_EQ(calls[1].events, 2u);
  EXPECT_TRUE(calls[1].options.settle_reads);
  EXPECT_EQ(calls[2].events, 1u);
  EXPECT_EQ(calls[3].events, 2u);
  std::lock_guard lock(turns_mutex);
  EXPECT_EQ(turns, (std::vector<std::pair<std::string, int>>{{"echo", 200}, {"echo", 200}}));
}

TEST_F(GatewayTest, ChatTakesTheSessionFromMetadata) {
  auto answer = call("POST", "/v1/chat/completions",
                     R"({"model":"echo","metadata":{"session_id":"meta-1"},"messages":[{"role":"user","content":"x"}]})");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(header_value(answer, "x-session-id"), "meta-1");
  EXPECT_EQ(version("meta-1"), 4u);
}

TEST_F(GatewayTest, ChatWithoutASessionIsRefused) {
  auto answer = call("POST", "/v1/chat/completions", R"({"model":"echo","messages":[{"role":"user","content":"x"}]})");
  expect_openai_error(answer, 400, "missing_session");
  EXPECT_TRUE(sink.calls().empty());
}

TEST_F(GatewayTest, SystemMessagesOfANewSessionBecomeItsSystemPrompt) {
  auto first = chat("sys-1", R"([{"role":"system","content":"Be brief."},)"
                             R"({"role":"developer","content":"Answer in French."},)"
                             R"({"role":"user","content":"hi"}])");
  ASSERT_EQ(first.status, 200) << first.body;
  auto session = header("sys-1");
  ASSERT_TRUE(session);
  EXPECT_EQ(session->system_prompt, "Be brief.\n\nAnswer in French.");
  // Not recorded as messages too.
  auto h = history("sys-1");
  ASSERT_EQ(h.size(), 4u) << outline("sys-1");
  EXPECT_EQ(h[1].role, "user");
  EXPECT_EQ(header_value(first, "x-statefold-state-version"), "2");
  const std::string reply = reply_text(first);
  EXPECT_FALSE(contains(reply, "- system prompt: 0 tokens")) << reply;

  // Later, a system message is part of the conversation, not a new system prompt.
  auto later = chat("sys-1", R"([{"role":"system","content":"Now be verbose."},{"role":"user","content":"go"}])");
  ASSERT_EQ(later.status, 200) << later.body;
  EXPECT_EQ(header("sys-1")->system_prompt, "Be brief.\n\nAnswer in French.");
  h = history("sys-1");
  ASSERT_EQ(h.size(), 8u) << outline("sys-1");
  EXPECT_EQ(h[4].role, "system");
  EXPECT_EQ(h[4].text, "Now be verbose.");
  EXPECT_EQ(h[5].role, "user");
}

TEST_F(GatewayTest, ANewSessionWithoutSystemMessagesHasNoSystemPrompt) {
  auto first = chat("sys-2", R"([{"role":"user","content":"hi"}])");
  ASSERT_EQ(first.status, 200) << first.body;
  EXPECT_EQ(header("sys-2")->system_prompt, "");
  EXPECT_TRUE(contains(reply_text(first), "- system prompt: 0 tokens")) << first.body;
}

// --- Responses ---

TEST_F(GatewayTest, ResponsesOpenAndContinueBypreviousResponseId) {
  auto first = responses(R"({"model":"echo","instructions":"Be terse.","input":"first question"})");
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string session = header_value(first, "x-session-id");
  ASSERT_TRUE(session.starts_with("resp-")) << session;
  auto r1 = parse(first);
  EXPECT_EQ(r1.at("object"), "response");
  EXPECT_EQ(r1.at("status"), "completed");
  const std::string id1(r1.at("id").as_string());
  // The id seals the session and the reply's version (opened 1, input 2, receipt 3, reply 4): opaque, the same
  // under the same secret, and it opens to nothing under another (issue 12, defect 10).
  const auto hex = base::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(session.data()), session.size()));
  EXPECT_EQ(id1, ids.response_id(session, 4));
  EXPECT_EQ(id1.find(hex), std::string::npos) << id1;
  EXPECT_EQ(id1.find(session), std::string::npos) << id1;
  EXPECT_FALSE(internal::IdSeal("another deployment's secret").open_response(id1));
  const std::string text1 = output_text(r1);
  EXPECT_TRUE(contains(text1, R"(Last user message: "first question")")) << text1;
  EXPECT_EQ(header(session)->system_prompt, "Be terse.");
  auto h = history(session);
  ASSERT_EQ(h.size(), 4u) << outline(session);
  EXPECT_EQ(h[3].role, "assistant");
  EXPECT_EQ(h[3].text, text1);

  auto second = responses(R"({"previous_response_id":")" + id1 + R"(","input":"second question"})");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(header_value(second, "x-session-id"), session);
  auto r2 = parse(second);
  const std::string id2(r2.at("id").as_string());
  EXPECT_EQ(id2, ids.response_id(session, 7));
  EXPECT_EQ(r2.at("previous_response_id"), json::value(id1));
  EXPECT_EQ(r2.at("model"), "echo") << "the session keeps its model";
  const std::string text2 = output_text(r2);
  EXPECT_TRUE(contains(text2, "- history: 3 messages")) << text2;
  EXPECT_TRUE(contains(text2, R"(Last user message: "second question")")) << text2;
  EXPECT_EQ(version(session), 7u);

  // GET gives the reply back, from the log.
  auto got = call("GET", "/v1/responses/" + id2);
  ASSERT_EQ(got.status, 200) << got.body;
  auto g = parse(got);
  EXPECT_EQ(g.at("id"), json::value(id2));
  EXPECT_EQ(g.at("model"), "echo");
  EXPECT_EQ(output_text(g), text2);
  auto got_first = call("GET", "/v1/responses/" + id1);
  ASSERT_EQ(got_first.status, 200) << got_first.body;
  EXPECT_EQ(output_text(parse(got_first)), text1);
  // A version that is not a reply (the receipt), or past the end, is no response.
  expect_openai_error(call("GET", "/v1/responses/" + ids.response_id(session, 6)), 404, "");
  expect_openai_error(call("GET", "/v1/responses/" + ids.response_id(session, 70)), 404, "");
  expect_openai_error(call("GET", "/v1/responses/bogus"), 404, "");
  expect_openai_error(call("GET", "/v1/responses/resp_" + hex + "_4"), 404, "");  // the old, readable form
  // A forged id (one character changed), and a conversation id of the same session, are no response.
  std::string forged = id2;
  forged[10] = forged[10] == 'A' ? 'B' : 'A';
  expect_openai_error(call("GET", "/v1/responses/" + forged), 404, "");
  // Nor is the same id spelled otherwise: every other last character (most differ in bytes, some only in the bits
  // base64 leaves unused).
  for (const char c : std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")) {
    if (c == id2.back()) continue;
    expect_openai_error(call("GET", "/v1/responses/" + id2.substr(0, id2.size() - 1) + c), 404, "");
  }
  expect_openai_error(call("GET", "/v1/responses/" + ids.conversation_id(session)), 404, "");

  // Continuing from the first reply again branches there (issue 12, defect 9): the turn runs on a fork of the
  // session at that reply, whose context has the first exchange and not the second; the session is untouched.
  auto branched = responses(R"({"previous_response_id":")" + id1 + R"(","input":"branch"})");
  ASSERT_EQ(branched.status, 200) << branched.body;
  const auto b = parse(branched);
  const std::string branch_text = output_text(b);
  EXPECT_TRUE(contains(branch_text, R"(Last user message: "branch")")) << branch_text;
  EXPECT_EQ(version(session), 7u) << "the branch was recorded in the original session";
  const std::string branch_id(b.at("id").as_string());
  const std::string child(header_value(branched, "x-session-id"));
  ASSERT_TRUE(child.starts_with(session + "~")) << child;
  const auto branch_at = ids.open_response(branch_id);
  ASSERT_TRUE(branch_at) << branch_id;
  EXPECT_EQ(branch_at->session, child) << "the branch's response is in the branch";
  const auto child_history = history(child);
  std::vector<std::string> user_texts;
  for (const auto& e : child_history) {
    if (e.role == "user") user_texts.push_back(e.text);
  }
  EXPECT_EQ(user_texts, (std::vector<std::string>{"first question", "branch"}));
  // The branch goes on from its own latest response; the original from its own.
  auto on_branch = responses(R"({"previous_response_id":")" + branch_id + R"(","input":"more"})");
  EXPECT_EQ(on_branch.status, 200) << on_branch.body;
  auto on_original = responses(R"({"previous_response_id":")" + id2 + R"(","input":"third question"})");
  EXPECT_EQ(on_original.status, 200) << on_original.body;
}

TEST_F(GatewayTest, ResponsesUnknownPreviousResponseIdIs404) {
  const std::string missing = "nosuch";
  for (const std::string& id : std::vector<std::string>{"resp_zz_1", ids.response_id(missing, 4), "not-a-response"}) {
    auto answer = responses(R"({"model":"echo","previous_response_id":")" + id + R"(","input":"x"})");
    const std::string message = expect_openai_error(answer, 404, "");
    EXPECT_TRUE(contains(message, "previous_response_id")) << message;
  }
  EXPECT_FALSE(header(missing)) << "an unknown previous_response_id must not open the session";
  EXPECT_TRUE(sink.calls().empty());

  // A version the session has not reached yet.
  auto first = responses(R"({"model":"echo","input":"x"})");
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string session = header_value(first, "x-session-id");
  auto ahead = responses(R"({"previous_response_id":")" + ids.response_id(session, 40) + R"(","input":"x"})");
  expect_openai_error(ahead, 404, "");
  EXPECT_EQ(version(session), 4u);
}

TEST_F(GatewayTest, ResponsesTakeTheSessionFromConversation) {
  // `conversation` must name an existing conversation (issue 12): an unknown one records nothing.
  auto unknown = responses(R"({"model":"echo","conversation":"conv-1","input":"one"})");
  expect_openai_error(unknown, 404, "");
  EXPECT_FALSE(header("conv-1"));
  EXPECT_TRUE(sink.calls().empty());

  auto created = call("POST", "/v1/conversations", R"({"metadata":{"topic":"demo"}})");
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string conversation(parse(created).at("id").as_string());
  const auto session = ids.open_conversation(conversation);
  ASSERT_TRUE(session) << conversation;
  auto first = responses(R"({"model":"echo","conversation":")" + conversation + R"(","input":"one"})");
  ASSERT_EQ(first.status, 200) << first.body;
  auto second = responses(R"({"conversation":{"id":")" + conversation + R"("},"input":"two"})");
  ASSERT_EQ(second.status, 200) << second.body;
  EXPECT_EQ(version(*session), 7u);
  EXPECT_TRUE(contains(output_text(parse(second)), "- history: 3 messages")) << second.body;
  EXPECT_EQ(parse(second).at("conversation").at("id"), json::value(conversation)) << second.body;
  // A session made another way is a conversation too, named by its id.
  ASSERT_EQ(chat("plain-1", R"([{"role":"user","content":"hi"}])").status, 200);
  auto on_plain = responses(R"({"conversation":"plain-1","input":"and now?"})");
  ASSERT_EQ(on_plain.status, 200) << on_plain.body;
  EXPECT_EQ(version("plain-1"), 7u);
  // A deleted conversation takes no more turns.
  ASSERT_EQ(call("DELETE", "/v1/conversations/" + conversation).status, 200);
  expect_openai_error(responses(R"({"conversation":")" + conversation + R"(","input":"three"})"), 404, "");
}

TEST_F(GatewayTest, ConversationsLifecycle) {
  // Create with metadata and items: leading system items become the system prompt, the rest messages.
  auto created = call("POST", "/v1/conversations",
                      R"({"metadata":{"topic":"billing","user":"ada"},"items":[)"
                      R"({"type":"message","role":"system","content":"Be terse."},)"
                      R"({"type":"message","role":"user","content":[{"type":"input_text","text":"hello"}]}]})");
  ASSERT_EQ(created.status, 200) << created.body;
  const auto c = parse(created);
  EXPECT_EQ(c.at("object"), "conversation");
  EXPECT_EQ(c.at("metadata"), json::parse(R"({"topic":"billing","user":"ada"})"));
  EXPECT_GT(c.at("created_at").as_int64(), 1700000000);
  const std::string id(c.at("id").as_string());
  ASSERT_TRUE(id.starts_with("conv_")) << id;
  const auto session = ids.open_conversation(id);
  ASSERT_TRUE(session);
  EXPECT_EQ(id.find(*session), std::string::npos) << "opaque: " << id;
  EXPECT_EQ(header(*session)->system_prompt, "Be terse.");
  EXPECT_EQ(version(*session), 2u);

  auto got = call("GET", "/v1/conversations/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(parse(got), c);

  // Metadata replaced: a SessionAmended on the log.
  auto updated = call("POST", "/v1/conversations/" + id, R"({"metadata":{"topic":"refunds"}})");
  ASSERT_EQ(updated.status, 200) << updated.body;
  EXPECT_EQ(parse(updated).at("metadata"), json::parse(R"({"topic":"refunds"})"));
  EXPECT_EQ(history(*session).back().type, "SessionAmended");
  expect_openai_error(call("POST", "/v1/conversations/" + id, R"({"metadata":{"k":1}})"), 400, "");

  // Items appended, then a turn on the conversation sees them.
  auto added = call("POST", "/v1/conversations/" + id + "/items",
                    R"({"items":[{"type":"message","role":"assistant","content":"Hi."},)"
                    R"({"type":"message","role":"user","content":"What is 2+2?"}]})");
  ASSERT_EQ(added.status, 200) << added.body;
  const auto a = parse(added);
  ASSERT_EQ(a.at("data").as_array().size(), 2u) << added.body;
  const std::string assistant_item(a.at("data").at(0).at("id").as_string());
  EXPECT_EQ(a.at("data").at(0).at("content").at(0).at("type"), "output_text");
  EXPECT_EQ(a.at("data").at(1).at("content").at(0).at("text"), "What is 2+2?");

  // Listed newest first by default; asc, limit and after page through them.
  auto listed = call("GET", "/v1/conversations/" + id + "/items");
  ASSERT_EQ(listed.status, 200) << listed.body;
  const auto l = parse(listed);
  ASSERT_EQ(l.at("data").as_array().size(), 3u) << listed.body;
  EXPECT_EQ(l.at("data").at(0).at("content").at(0).at("text"), "What is 2+2?");
  EXPECT_EQ(l.at("data").at(2).at("content").at(0).at("text"), "hello");
  EXPECT_EQ(l.at("has_more"), false);
  auto page = call("GET", "/v1/conversations/" + id + "/items?order=asc&limit=1");
  const auto p1 = parse(page);
  ASSERT_EQ(p1.at("data").as_array().size(), 1u) << page.body;
  EXPECT_EQ(p1.at("has_more"), true);
  auto page2 = call("GET", "/v1/conversations/" + id + "/items?order=asc&limit=5&after=" +
                               std::string(p1.at("last_id").as_string()));
  const auto p2 = parse(page2);
  ASSERT_EQ(p2.at("data").as_array().size(), 2u) << page2.body;
  EXPECT_EQ(p2.at("data").at(0).at("id"), json::value(assistant_item));
  expect_openai_error(call("GET", "/v1/conversations/" + id + "/items?limit=0"), 400, "");
  auto item = call("GET", "/v1/conversations/" + id + "/items/" + assistant_item);
  ASSERT_EQ(item.status, 200) << item.body;
  EXPECT_EQ(parse(item).at("role"), "assistant");

  // A deleted item leaves the context of the next turn, and the listing; its message stays in the history.
  auto deleted = call("DELETE", "/v1/conversations/" + id + "/items/" + assistant_item);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(parse(deleted).at("object"), "conversation");
  expect_openai_error(call("GET", "/v1/conversations/" + id + "/items/" + assistant_item), 404, "");
  EXPECT_EQ(parse(call("GET", "/v1/conversations/" + id + "/items")).at("data").as_array().size(), 2u);
  auto turn = responses(R"({"model":"echo","conversation":")" + id + R"(","input":"and?"})");
  ASSERT_EQ(turn.status, 200) << turn.body;
  const std::string text = output_text(parse(turn));
  EXPECT_TRUE(contains(text, "- history: 3 messages")) << text;  // hello, What is 2+2?, and?
  bool kept = false;
  for (const auto& e : history(*session)) kept = kept || e.text == "Hi.";
  EXPECT_TRUE(kept) << "withdrawn, not erased: " << outline(*session);

  // Another tenant's or a made-up id, and an item of another conversation, are 404.
  expect_openai_error(call("GET", "/v1/conversations/conv_nothing"), 404, "");
  expect_openai_error(call("GET", "/v1/conversations/" + ids.conversation_id("never-made")), 404, "");
  expect_openai_error(call("DELETE", "/v1/conversations/" + id + "/items/" + ids.item_id("other", 2)), 404, "");

  // Deleted: gone for the API, its events kept.
  auto removed = call("DELETE", "/v1/conversations/" + id);
  ASSERT_EQ(removed.status, 200) << removed.body;
  EXPECT_EQ(parse(removed), json::parse(R"({"id":")" + id + R"(","object":"conversation.deleted","deleted":true})"));
  expect_openai_error(call("GET", "/v1/conversations/" + id), 404, "");
  expect_openai_error(call("GET", "/v1/conversations/" + id + "/items"), 404, "");
  EXPECT_TRUE(header(*session)->closed);
}

TEST_F(GatewayTest, ResponsesDeleteAndInputItems) {
  auto first = responses(R"({"model":"echo","input":[{"role":"user","content":"one"},{"role":"user","content":"two"}]})");
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string session = header_value(first, "x-session-id");
  const std::string id1(parse(first).at("id").as_string());
  auto second = responses(R"({"previous_response_id":")" + id1 + R"(","input":"three"})");
  ASSERT_EQ(second.status, 200) << second.body;
  const std::string id2(parse(second).at("id").as_string());

  // input_items: what each turn sent, newest first by default.
  auto items1 = call("GET", "/v1/responses/" + id1 + "/input_items?order=asc");
  ASSERT_EQ(items1.status, 200) << items1.body;
  const auto i1 = parse(items1);
  ASSERT_EQ(i1.at("data").as_array().size(), 2u) << items1.body;
  EXPECT_EQ(i1.at("data").at(0).at("content").at(0).at("text"), "one");
  EXPECT_EQ(i1.at("data").at(1).at("content").at(0).at("text"), "two");
  auto items2 = call("GET", "/v1/responses/" + id2 + "/input_items");
  const auto i2 = parse(items2);
  ASSERT_EQ(i2.at("data").as_array().size(), 1u) << items2.body;
  EXPECT_EQ(i2.at("data").at(0).at("content").at(0).at("text"), "three");
  expect_openai_error(call("GET", "/v1/responses/" + ids.response_id(session, 3) + "/input_items"), 404, "");

  // Deleting the first response withdraws its turn (input and reply) from the session's context.
  auto deleted = call("DELETE", "/v1/responses/" + id1);
  ASSERT_EQ(deleted.status, 200) << deleted.body;
  EXPECT_EQ(parse(deleted), json::parse(R"({"id":")" + id1 + R"(","object":"response","deleted":true})"));
  expect_openai_error(call("GET", "/v1/responses/" + id1), 404, "");
  expect_openai_error(call("DELETE", "/v1/responses/" + id1), 404, "");
  expect_openai_error(responses(R"({"previous_response_id":")" + id1 + R"(","input":"x"})"), 404,
                      "previous_response_not_found");
  EXPECT_EQ(call("GET", "/v1/responses/" + id2).status, 200);
  auto third = responses(R"({"previous_response_id":")" + id2 + R"(","input":"four"})");
  ASSERT_EQ(third.status, 200) << third.body;
  const std::string text = output_text(parse(third));
  EXPECT_TRUE(contains(text, "- history: 3 messages")) << text;  // three, its reply, four
}

// --- Input checked against the state ---

TEST_F(GatewayTest, AToolResultThatAnswersNoPendingCallIsRefused) {
  ASSERT_EQ(chat("tool-1", R"([{"role":"user","content":"hi"}])").status, 200);
  const auto appends = sink.calls().size();
  auto answer = chat("tool-1", R"([{"role":"tool","tool_call_id":"call_9","content":"42"}])");
  const std::string message = expect_openai_error(answer, 400, "unknown_tool_call");
  EXPECT_TRUE(contains(message, "messages[0].tool_call_id: 'call_9'")) << message;
  EXPECT_TRUE(contains(message, "pending: none")) << message;
  EXPECT_EQ(version("tool-1"), 4u) << outline("tool-1");
  EXPECT_EQ(sink.calls().size(), appends) << "nothing may be sent";

  // On a new session too: it is not opened.
  auto fresh = chat("tool-2", R"([{"role":"tool","tool_call_id":"call_1","content":"42"}])");
  expect_openai_error(fresh, 400, "unknown_tool_call");
  EXPECT_FALSE(header("tool-2"));
  EXPECT_EQ(sink.calls().size(), appends);
}

TEST_F(GatewayTest, AToolResultAnsweringACallOfTheSameInputIsRecorded) {
  ASSERT_EQ(chat("tool-3", R"([{"role":"user","content":"hi"}])").status, 200);
  auto answer = chat("tool-3", R"([{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",)"
                               R"("function":{"name":"lookup","arguments":"{}"}}]},)"
                               R"({"role":"tool","tool_call_id":"call_1","content":"42"}])");
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto h = history("tool-3");
  ASSERT_EQ(h.size(), 8u) << outline("tool-3");
  EXPECT_EQ(h[4].role, "assistant");
  EXPECT_EQ(h[5].role, "tool");
  EXPECT_EQ(h[5].text, "42");
  // The result closed the call: another result for it answers nothing.
  auto again = chat("tool-3", R"([{"role":"tool","tool_call_id":"call_1","content":"43"}])");
  expect_openai_error(again, 400, "unknown_tool_call");
  EXPECT_EQ(version("tool-3"), 8u);
}

// --- Sessions this instance does not fold ---

TEST_F(GatewayTest, ASessionOwnedElsewhereIsMisdirected) {
  state.set_ownership({runtime::Ownership::State::elsewhere, 7});
  auto answer = chat("away-1", R"([{"role":"user","content":"hi"}])");
  const std::string message = expect_openai_error(answer, 421, "misdirected_request");
  EXPECT_TRUE(contains(message, "partition 7")) << message;
  EXPECT_TRUE(contains(message, "away-1")) << message;
  auto by_responses = responses(R"({"model":"echo","conversation":"away-1","input":"hi"})");
  expect_openai_error(by_responses, 421, "misdirected_request");
  EXPECT_TRUE(sink.calls().empty());
  EXPECT_FALSE(header("away-1"));
}

// Refused before anything was done: OpenAI's SDKs may retry it, as Retry-After invites (x-should-retry: false
// would forbid them).
TEST_F(GatewayTest, NoPartitionsYetIs503) {
  state.set_ownership({runtime::Ownership::State::unassigned, -1});
  auto answer = chat("early-1", R"([{"role":"user","content":"hi"}])");
  const std::string message = expect_openai_error(answer, 503, "", "true");
  EXPECT_TRUE(contains(message, "no partitions")) << message;
  EXPECT_EQ(header_value(answer, "Retry-After"), "1");
  EXPECT_TRUE(sink.calls().empty());
  // Once assigned, the same request works.
  state.set_ownership({runtime::Ownership::State::owned, 0});
  EXPECT_EQ(chat("early-1", R"([{"role":"user","content":"hi"}])").status, 200);
}

TEST_F(GatewayTest, APartitionStillMovingInIs503WithARetry) {
  state.set_ownership({runtime::Ownership::State::moving, 5});
  auto answer = chat("moving-1", R"([{"role":"user","content":"hi"}])");
  const std::string message = expect_openai_error(answer, 503, "partition_moving", "true");
  EXPECT_TRUE(contains(message, "partition 5")) << message;
  EXPECT_EQ(header_value(answer, "Retry-After"), "1");
  EXPECT_EQ(header_value(answer, "X-Statefold-Partition"), "5");
  expect_openai_error(responses(R"({"model":"echo","conversation":"moving-1","input":"hi"})"), 503,
                      "partition_moving", "true");
  EXPECT_TRUE(sink.calls().empty());
}

// --- The write path failing ---

// A chaos run found a chat turn answered 200 whose reply was not in the session: the log refused the reply and
// receipt, and the client was shown the answer anyway. They are sent again until the log takes them.
TEST_F(GatewayTest, AReplyTheLogRefusedIsSentAgainUntilItIsRecorded) {
  std::thread recovery;
  sink.before_next_append([&](testing::MemorySink& s, const std::string&, const append::Events&) {
    s.fail_appends("broker down");  // from the reply and receipt on, until the broker is back
    recovery = std::thread([&s] {
      std::this_thread::sleep_for(600ms);
      s.fail_appends(std::nullopt);
    });
  });
  auto answer = chat("flaky-1", R"([{"role":"user","content":"hi"}])");
  recovery.join();
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto entries = history("flaky-1");
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().type, "Message");
  EXPECT_EQ(entries.back().role, "assistant") << "the reply the client was shown is not in its session";
  EXPECT_GT(sink.calls().size(), 3u) << "the reply and receipt were not sent again";
}

TEST_F(GatewayTest, AReplyTheLogNeverTookIs503NotAnAnswer) {
  sink.before_next_append([](testing::MemorySink& s, const std::string&, const append::Events&) { s.fail_appends("broker down"); });
  auto answer = chat("lost-1", R"([{"role":"user","content":"hi"}])");
  const std::string message = expect_openai_error(answer, 503, "");
  EXPECT_TRUE(contains(message, "its reply could not be recorded (broker down)")) << message;
  EXPECT_EQ(header_value(answer, "retry-after"), "1");
  sink.fail_appends(std::nullopt);
  for (const auto& e : history("lost-1")) EXPECT_NE(e.role, "assistant") << "a reply was recorded after all";
  std::lock_guard lock(turns_mutex);
  ASSERT_FALSE(turns.empty());
  EXPECT_EQ(turns.back().second, 503) << "the turn was counted as answered";
}

TEST_F(GatewayTest, AnUnavailableLogIs503) {
  sink.fail_appends("broker down");
  auto fresh = chat("down-1", R"([{"role":"user","content":"hi"}])");
  std::string message = expect_openai_error(fresh, 503, "");
  EXPECT_TRUE(contains(message, "the event log is unavailable: broker down")) << message;
  EXPECT_FALSE(header("down-1"));

  sink.fail_appends(std::nullopt);
  ASSERT_EQ(chat("down-2", R"([{"role":"user","content":"hi"}])").status, 200);
  sink.fail_appends("broker down");
  auto existing = chat("down-2", R"([{"role":"user","content":"more"}])");
  message = expect_openai_error(existing, 503, "");
  EXPECT_TRUE(contains(message, "broker down")) << message;
  EXPECT_EQ(version("down-2"), 4u);

  // The failed turn left nothing behind: the next one is read from the state as it is (not as predicted).
  sink.fail_appends(std::nullopt);
  auto next = chat("down-2", R"([{"role":"user","content":"again"}])");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(header_value(next, "x-statefold-state-version"), "5");
  EXPECT_TRUE(contains(reply_text(next), "- history: 3 messages")) << next.body;
}

TEST_F(GatewayTest, AWriterBetweenTheReadAndTheFoldIsAConflict) {
  ASSERT_EQ(chat("race-1", R"([{"role":"user","content":"hi"}])").status, 200);
  ASSERT_EQ(version("race-1"), 4u);
  // Another writer's message is folded after the gateway read the session at 4 and before its input.
  sink.before_next_append([](testing::MemorySink& s, const std::string& session, const append::Events&) {
    auto applied = s.fold_json({testing::message(99, session, "user", "meanwhile")});
    ASSERT_EQ(applied.size(), 1u);
    EXPECT_EQ(applied[0].outcome, fold::Outcome::accepted);
  });
  auto answer = chat("race-1", R"([{"role":"user","content":"mine"}])");
  const std::string message = expect_openai_error(answer, 409, "session_conflict");
  EXPECT_TRUE(contains(message, "the session changed")) << message;

  // The other writer's message, then the receipt of a call made for a state that never was; not the input.
  auto h = history("race-1");
  ASSERT_EQ(h.size(), 6u) << outline("race-1");
  EXPECT_EQ(h[4].role, "user");
  EXPECT_EQ(h[4].text, "meanwhile");
  EXPECT_EQ(h[5].type, "InferenceReceipt");
  EXPECT_EQ(h[5].state_version, 0u);
  EXPECT_EQ(h[5].render, "");
  EXPECT_TRUE(contains(h[5].error, "not recorded as predicted")) << h[5].error;
  for (const auto& e : h) EXPECT_NE(e.text, "mine") << e.version;
  EXPECT_EQ(header("race-1")->rejections, 1u);

  // The cached context (which held the input as predicted) was forgotten: what a call would send now, and a retry,
  // are rendered from the state as it is.
  auto overview = call("GET", "/v1/sessions/race-1/context");
  ASSERT_EQ(overview.status, 200) << overview.body;
  EXPECT_TRUE(contains(overview.body, "meanwhile")) << overview.body;
  EXPECT_FALSE(contains(overview.body, "mine")) << overview.body;
  auto retry = chat("race-1", R"([{"role":"user","content":"mine"}])");
  ASSERT_EQ(retry.status, 200) << retry.body;
  EXPECT_EQ(header_value(retry, "x-statefold-state-version"), "7");
  const std::string reply = reply_text(retry);
  EXPECT_TRUE(contains(reply, "- history: 4 messages")) << reply;
  EXPECT_TRUE(contains(reply, "(versions 2..7)")) << reply;
}

TEST_F(GatewayTest, ASecondTurnWhileOneIsInProgressIs409) {
  ASSERT_EQ(chat("busy-1", R"([{"role":"user","content":"hi"}])").status, 200);
  // While the first turn's input is being appended, the same session's next turn arrives.
  std::optional<http::Response> second;
  sink.before_next_append([&](testing::MemorySink&, const std::string&, const append::Events&) {
    second = chat("busy-1", R"([{"role":"user","content":"too soon"}])");
  });
  auto first = chat("busy-1", R"([{"role":"user","content":"first"}])");
  ASSERT_EQ(first.status, 200) << first.body;
  ASSERT_TRUE(second);
  const std::string message = expect_openai_error(*second, 409, "turn_in_progress");
  EXPECT_TRUE(contains(message, "busy-1")) << message;
  EXPECT_EQ(version("busy-1"), 7u) << outline("busy-1");
  for (const auto& e : history("busy-1")) EXPECT_NE(e.text, "too soon") << e.version;
}

// --- Requests that are not turns ---

TEST_F(GatewayTest, ErrorsAreOpenAIShaped) {
  expect_openai_error(call("POST", "/v1/chat/completions", "{not json"), 400, "");
  expect_openai_error(call("POST", "/v1/chat/completions", R"({"messages":[]})", {{"x-session-id", "e-1"}}), 400, "");
  expect_openai_error(call("POST", "/v1/responses", R"({"model":"echo"})"), 400, "");
  expect_openai_error(call("POST", "/v1/responses", R"({"model":"echo","input":"x","temperature":"hot"})"), 400, "");
  expect_openai_error(call("GET", "/v1/chat/completions"), 405, "");
  expect_openai_error(call("PUT", "/v1/responses/resp_00_1"), 405, "");
  expect_openai_error(call("DELETE", "/v1/responses/resp_00_1"), 404, "");
  expect_openai_error(call("PUT", "/v1/conversations"), 405, "");
  EXPECT_TRUE(sink.calls().empty());
}

TEST_F(GatewayTest, ContextOverviewShowsWhatACallWouldSend) {
  ASSERT_EQ(chat("ctx-1", R"([{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}])").status, 200);
  auto overview = call("GET", "/v1/sessions/ctx-1/context");
  ASSERT_EQ(overview.status, 200) << overview.body;
  EXPECT_TRUE(contains(overview.body, "Be brief.")) << overview.body;
  EXPECT_TRUE(contains(overview.body, "hi")) << overview.body;
  EXPECT_EQ(call("GET", "/v1/sessions/none/context").status, 404);
  auto handles = [](std::string path) {
    http::Request request;
    request.method = "GET";
    request.path = std::move(path);
    return Gateway::handles(request);
  };
  EXPECT_TRUE(handles("/v1/sessions/ctx-1/context"));
  EXPECT_FALSE(handles("/v1/sessions/ctx-1"));
  EXPECT_FALSE(handles("/v1/sessions//context"));
}

// --- Streams: through a loopback server, which is what reads a BodyStream ---

struct Frame {
  std::string event;
  std::string data;
};

// A Server-Sent Events body, frame by frame.
std::vector<Frame> frames(const std::string& body) {
  std::vector<Frame> out;
  std::size_t start = 0;
  while (start < body.size()) {
    std::size_t end = body.find("\n\n", start);
    if (end == std::string::npos) end = body.size();
    Frame f;
    std::size_t line_start = start;
    while (line_start < end) {
      std::size_t line_end = body.find('\n', line_start);
      if (line_end == std::string::npos || line_end > end) line_end = end;
      const std::string_view line(body.data() + line_start, line_end - line_start);
      if (line.starts_with("event: ")) f.event = line.substr(7);
      if (line.starts_with("data: ")) f.data += line.substr(6);
      line_start = line_end + 1;
    }
    if (!f.event.empty() || !f.data.empty()) out.push_back(std::move(f));
    start = end + 2;
  }
  return out;
}

class GatewayStreamTest : public GatewayTest {
 protected:
  void SetUp() override {
    GatewayTest::SetUp();
    http::ServerOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    auto started = http::Server::start(options, [this](http::Request request, http::Respond respond) {
      gateway->handle(std::move(request), auth::unrestricted(), std::move(respond));
    });
    ASSERT_TRUE(started.ok()) << started.error().message;
    server = std::move(*started);
  }
  void TearDown() override {
    if (server) server->stop();
  }
  http::ClientResponse post(const std::string& target, const std::string& body) {
    auto answer = http::call("127.0.0.1", server->port(), "POST", target, body, 30s);
    EXPECT_TRUE(answer.ok()) << answer.error().message;
    return answer.ok() ? *answer : http::ClientResponse{};
  }

  std::unique_ptr<http::Server> server;
};

TEST_F(GatewayStreamTest, ChatStreamsTheReplyItRecords) {
  auto answer = post("/v1/chat/completions",
                     R"({"model":"echo","stream":true,"stream_options":{"include_usage":true},)"
                     R"("metadata":{"session_id":"stream-1"},"messages":[{"role":"user","content":"stream me"}]})");
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto fs = frames(answer.body);
  ASSERT_GE(fs.size(), 3u) << answer.body;
  EXPECT_EQ(fs.back().data, "[DONE]") << answer.body;
  std::string text;
  std::string finish;
  bool usage = false;
  for (std::size_t i = 0; i + 1 < fs.size(); ++i) {
    auto chunk = json::parse(fs[i].data);
    EXPECT_EQ(chunk.at("object"), "chat.completion.chunk") << fs[i].data;
    const auto& choices = chunk.at("choices").as_array();
    if (!choices.empty()) {
      const auto& delta = choices[0].at("delta").as_object();
      if (delta.contains("content") && delta.at("content").is_string()) text += delta.at("content").as_string();
      if (choices[0].at("finish_reason").is_string()) finish = choices[0].at("finish_reason").as_string();
    }
    if (chunk.as_object().contains("usage") && chunk.at("usage").is_object()) usage = true;
  }
  EXPECT_EQ(finish, "stop");
  EXPECT_TRUE(usage) << "include_usage asked for a usage chunk";
  EXPECT_TRUE(contains(text, R"(Last user message: "stream me")")) << text;

  // The same reply is on the log, after the input and the receipt.
  sink.settle("stream-1", 5s);
  auto h = history("stream-1");
  ASSERT_EQ(h.size(), 4u) << outline("stream-1");
  EXPECT_EQ(h[2].type, "InferenceReceipt");
  EXPECT_EQ(h[3].role, "assistant");
  EXPECT_EQ(h[3].text, text);
}

TEST_F(GatewayStreamTest, ResponsesStreamAnnouncesTheIdItRecordsUnder) {
  auto first = post("/v1/responses", R"({"model":"echo","stream":true,"metadata":{"session_id":"stream-2"},)"
                                     R"("input":"one"})");
  ASSERT_EQ(first.status, 200) << first.body;
  auto fs = frames(first.body);
  ASSERT_FALSE(fs.empty()) << first.body;
  EXPECT_EQ(fs.front().event, "response.created") << first.body;
  EXPECT_EQ(fs.back().event, "response.completed") << first.body;
  std::string text;
  for (const auto& f : fs) {
    if (f.event == "response.output_text.delta") text += json::parse(f.data).at("delta").as_string();
  }
  auto completed = json::parse(fs.back().data).at("response");
  const std::string id(completed.at("id").as_string());
  EXPECT_EQ(json::parse(fs.front().data).at("response").at("id"), json::value(id)) << "announced up front";
  EXPECT_EQ(output_text(completed), text);

  // The announced id is the recorded reply: GET finds it and a turn can continue from it.
  auto got = call("GET", "/v1/responses/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(output_text(parse(got)), text);
  auto next = post("/v1/responses", R"({"previous_response_id":")" + id + R"(","input":"two"})");
  ASSERT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(version("stream-2"), 7u);
}

TEST_F(GatewayStreamTest, AResponsesStreamWhoseReplyTheLogNeverTookEndsFailed) {
  // The text went out, then the reply could not be recorded: the stream ends as a failed response, in the
  // Responses API's own terms (response.failed), not with a chat-style error frame.
  sink.before_next_append([](testing::MemorySink& s, const std::string&, const append::Events&) {
    s.fail_appends("broker down");
  });
  auto answer = post("/v1/responses", R"({"model":"echo","stream":true,"input":"hi"})");
  sink.fail_appends(std::nullopt);
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto fs = frames(answer.body);
  ASSERT_FALSE(fs.empty()) << answer.body;
  EXPECT_EQ(fs.front().event, "response.created") << answer.body;
  EXPECT_EQ(fs.back().event, "response.failed") << answer.body;
  const auto failed = json::parse(fs.back().data).at("response");
  EXPECT_EQ(failed.at("status"), "failed");
  EXPECT_TRUE(contains(std::string(failed.at("error").at("message").as_string()), "could not be recorded"))
      << fs.back().data;
}

TEST_F(GatewayStreamTest, ARefusalBeforeTheStreamStartsIsAPlainError) {
  ASSERT_EQ(chat("stream-3", R"([{"role":"user","content":"hi"}])").status, 200);
  auto answer = post("/v1/chat/completions",
                     R"({"model":"echo","stream":true,"metadata":{"session_id":"stream-3"},)"
                     R"("messages":[{"role":"tool","tool_call_id":"call_9","content":"42"}]})");
  EXPECT_EQ(answer.status, 400) << answer.body;
  auto v = json::parse(answer.body);
  EXPECT_EQ(v.at("error").at("code"), "unknown_tool_call") << answer.body;
  EXPECT_EQ(version("stream-3"), 4u);
}

// GET /v1/models lists what the caller's routes reach: "vip/" sessions may use the paid endpoint, others only echo.
TEST(GatewayModels, ListTheModelsTheSessionsRoutesReach) {
  upstream::RoutingConfig config = offline_routing();
  upstream::Endpoint paid = config.endpoints[0];
  paid.name = "paid";
  paid.model = "gpt-4o";
  paid.models = {"gpt-4o-mini", "*", "echo"};
  config.endpoints.push_back(paid);
  config.routes.push_back({"", {"echo"}, ""});
  config.routes.push_back({"vip/", {"paid", "echo"}, ""});
  auto router = upstream::Router::make(config);
  ASSERT_TRUE(router.ok()) << router.error().message;
  testing::MemorySink sink;
  MemoryState state(sink);
  Gateway gateway(Options{std::move(*router), 1, {}, 1 << 20, {}, {}, {}}, state, sink);
  auto call = [&](std::string method, std::string path, std::string session) {
    http::Request request = request_for(std::move(method), std::move(path));
    if (!session.empty()) request.headers.emplace_back("x-session-id", session);
    EXPECT_TRUE(gateway.handles(request)) << request.path;
    std::promise<http::Response> answered;
    gateway.handle(std::move(request), auth::unrestricted(), [&](http::Response r) { answered.set_value(std::move(r)); });
    return answered.get_future().get();
  };
  auto ids = [](const http::Response& r) {
    std::vector<std::string> out;
    const json::value list = json::parse(r.body);
    for (const auto& m : list.at("data").as_array()) {
      out.push_back(std::string(m.at("id").as_string()) + "@" + std::string(m.at("owned_by").as_string()));
    }
    return out;
  };

  auto plain = call("GET", "/v1/models", "");
  ASSERT_EQ(plain.status, 200) << plain.body;
  EXPECT_EQ(json::parse(plain.body).at("object").as_string(), "list");
  EXPECT_EQ(ids(plain), (std::vector<std::string>{"echo@echo"}));
  auto vip = call("GET", "/v1/models", "vip/alice");
  ASSERT_EQ(vip.status, 200) << vip.body;
  EXPECT_EQ(ids(vip), (std::vector<std::string>{"echo@echo", "gpt-4o@paid", "gpt-4o-mini@paid"}));

  auto one = call("GET", "/v1/models/gpt-4o", "vip/alice");
  ASSERT_EQ(one.status, 200) << one.body;
  EXPECT_EQ(json::parse(one.body).at("owned_by").as_string(), "paid");
  EXPECT_EQ(json::parse(one.body).at("object").as_string(), "model");
  auto hidden = call("GET", "/v1/models/gpt-4o", "bob");
  EXPECT_EQ(hidden.status, 404);
  EXPECT_EQ(json::parse(hidden.body).at("error").at("code").as_string(), "model_not_found");
  EXPECT_EQ(call("POST", "/v1/models", "").status, 405);
}

// A key's budget is checked against what Options::tokens_used reports (in a group: every instance's receipts,
// cluster::GroupUsage), not this store's receipts alone; nothing of a refused turn is recorded.
TEST(GatewayBudget, TurnsAreCheckedAgainstWhatTokensUsedReports) {
  auto router = upstream::Router::make(offline_routing());
  ASSERT_TRUE(router.ok()) << router.error().message;
  testing::MemorySink sink;
  MemoryState state(sink);
  std::mutex mutex;
  base::Result<std::uint64_t> reported = std::uint64_t{0};
  std::vector<std::pair<std::string, std::string>> asked;  // key, first day of the window
  Options options{std::move(*router), 1, {}, 1 << 20, {}, {}, {}};
  options.tokens_used = [&](const auth::Principal& caller, const auth::BudgetWindow& window) {
    std::lock_guard lock(mutex);
    asked.emplace_back(caller.key_name, window.from_day);
    return reported;
  };
  Gateway gateway(std::move(options), state, sink);
  auth::Principal capped = auth::unrestricted();
  capped.key_name = "capped";
  capped.token_budget = 100;
  capped.budget_period = auth::Period::month;
  auto turn = [&](const std::string& session) {
    http::Request request = request_for("POST", "/v1/chat/completions");
    request.headers = {{"x-session-id", session}, {"content-type", "application/json"}};
    request.body = R"({"model":"echo","messages":[{"role":"user","content":"hi"}]})";
    std::promise<http::Response> answered;
    gateway.handle(std::move(request), capped, [&](http::Response r) { answered.set_value(std::move(r)); });
    return answered.get_future().get();
  };

  reported = std::uint64_t{99};
  EXPECT_EQ(turn("under").status, 200);
  reported = std::uint64_t{100};
  const http::Response over = turn("over");
  EXPECT_EQ(over.status, 429) << over.body;
  EXPECT_NE(over.body.find("insufficient_quota"), std::string::npos) << over.body;
  EXPECT_NE(header_value(over, "Retry-After"), "");
  EXPECT_FALSE(fold::load_header(*sink.snapshot(), "over").has_value()) << "a refused turn recorded something";
  reported = base::make_error("the store cannot be read");
  const http::Response failed = turn("failed");
  EXPECT_EQ(failed.status, 500) << failed.body;
  EXPECT_NE(failed.body.find("the store cannot be read"), std::string::npos) << failed.body;

  std::lock_guard lock(mutex);
  ASSERT_EQ(asked.size(), 3u);
  const auto month = auth::budget_window(auth::Period::month, std::chrono::system_clock::now());
  for (const auto& [key, from] : asked) {
    EXPECT_EQ(key, "capped");
    EXPECT_EQ(from, month.from_day);
  }
}

}  // namespace
}  // namespace statefold::gateway
