// Issue 12, defect 1: clients that resend the whole conversation. reconcile() decides what of a chat request the
// session already has; it is pure, so every shape a client sends is tried here directly.
#include "connectors/gateway/internal/reconcile.h"

#include <gtest/gtest.h>

namespace statefold::gateway::internal {
namespace {

protocol::ClientMessage said(context::Role role, std::string text) {
  protocol::ClientMessage m;
  m.role = role;
  if (!text.empty()) m.content.push_back({context::PartKind::text, std::move(text), {}});
  return m;
}
protocol::ClientMessage user(std::string text) { return said(context::Role::user, std::move(text)); }
protocol::ClientMessage assistant(std::string text) { return said(context::Role::assistant, std::move(text)); }
protocol::ClientMessage system(std::string text) { return said(context::Role::system, std::move(text)); }
protocol::ClientMessage calls(std::string id, std::string arguments) {
  auto m = said(context::Role::assistant, "");
  m.tool_calls.push_back({std::move(id), "lookup", std::move(arguments)});
  return m;
}
protocol::ClientMessage result(std::string id, std::string text) {
  auto m = said(context::Role::tool, std::move(text));
  m.tool_call_id = std::move(id);
  return m;
}

// The session's history as the fold keeps it: what the client sent (and the replies) turned into messages.
std::vector<context::Message> stored(const std::vector<protocol::ClientMessage>& messages) {
  std::vector<context::Message> out;
  for (const auto& m : messages) out.push_back(protocol::to_message(m));
  return out;
}

const std::vector<protocol::ClientMessage> kConversation = {user("What is the capital of France?"),
                                                           assistant("Paris."), user("And its population?"),
                                                           assistant("About 2.1 million.")};

TEST(Reconcile, TheWholeConversationResentLeavesOnlyTheNewMessage) {
  auto sent = kConversation;
  sent.push_back(user("And Lyon's?"));
  const auto r = reconcile(sent, "", stored(kConversation));
  EXPECT_FALSE(r.diverged) << r.why;
  EXPECT_EQ(r.known, 4u);
}

TEST(Reconcile, TheSystemPromptResentIsTheSessionsPromptNotHistory) {
  std::vector<protocol::ClientMessage> sent{system("You are terse.")};
  sent.insert(sent.end(), kConversation.begin(), kConversation.end());
  sent.push_back(user("And Lyon's?"));
  EXPECT_EQ(reconcile(sent, "You are terse.", stored(kConversation)).known, 5u);
  // Only the prompt and a new message (a client that sends the prompt each time, and nothing else old).
  const auto r = reconcile({system("You are terse."), user("Hi")}, "You are terse.", stored(kConversation));
  EXPECT_FALSE(r.diverged);
  EXPECT_EQ(r.known, 1u);
}

TEST(Reconcile, AnotherSystemPromptWithTheConversationIsRefused) {
  std::vector<protocol::ClientMessage> sent{system("You are verbose.")};
  sent.insert(sent.end(), kConversation.begin(), kConversation.end());
  sent.push_back(user("And Lyon's?"));
  const auto r = reconcile(sent, "You are terse.", stored(kConversation));
  EXPECT_TRUE(r.diverged);
  EXPECT_NE(r.why.find("system prompt"), std::string::npos) << r.why;
}

TEST(Reconcile, OnlyTheNewMessagesAreAllNew) {
  const auto r = reconcile({user("And Lyon's?")}, "", stored(kConversation));
  EXPECT_FALSE(r.diverged);
  EXPECT_EQ(r.known, 0u);
  EXPECT_EQ(reconcile({user("hi")}, "", {}).known, 0u);  // a session with no history yet
}

TEST(Reconcile, AWindowOfTheLatestMessagesIsRecognised) {
  std::vector<protocol::ClientMessage> sent{kConversation[2], kConversation[3], user("And Lyon's?")};
  const auto r = reconcile(sent, "", stored(kConversation));
  EXPECT_FALSE(r.diverged);
  EXPECT_EQ(r.known, 2u);
}

TEST(Reconcile, TheSameConversationAgainHasNothingNew) {
  EXPECT_EQ(reconcile(kConversation, "", stored(kConversation)).known, 4u);
}

// Issue 12, defect 3: the turn failed after its question was recorded; the client retries the same question.
TEST(Reconcile, ARetriedQuestionWhoseTurnFailedIsTheStoredOne) {
  auto failed = kConversation;
  failed.push_back(user("And Lyon's?"));  // recorded, no reply
  EXPECT_EQ(reconcile({user("And Lyon's?")}, "", stored(failed)).known, 1u);
  auto resent = failed;
  EXPECT_EQ(reconcile(resent, "", stored(failed)).known, 5u);
}

TEST(Reconcile, AnEditedEarlierMessageIsADivergenceNotNewHistory) {
  auto sent = kConversation;
  sent[2] = user("And its area?");
  sent.push_back(user("And Lyon's?"));
  const auto r = reconcile(sent, "", stored(kConversation));
  EXPECT_TRUE(r.diverged);
  EXPECT_NE(r.why.find("fork"), std::string::npos) << r.why;
}

TEST(Reconcile, AConversationWithAnotherBeginningIsADivergence) {
  std::vector<protocol::ClientMessage> sent{user("What is the capital of Spain?"), kConversation[1], user("And?")};
  EXPECT_TRUE(reconcile(sent, "", stored(kConversation)).diverged);
}

TEST(Reconcile, ToolRoundTripsMatchWithArgumentsReserialised) {
  std::vector<protocol::ClientMessage> session{user("Weather in Paris?"), calls("call_1", R"({"city":"Paris","days":2})"),
                                               result("call_1", "sunny"), assistant("Sunny.")};
  std::vector<protocol::ClientMessage> sent{user("Weather in Paris?"),
                                            calls("call_1", R"({ "days": 2, "city": "Paris" })"),
                                            result("call_1", "sunny"), assistant("Sunny."), user("Tomorrow?")};
  // A client that sends `"content": ""` beside its tool calls.
  sent[1].content.push_back({context::PartKind::text, "", {}});
  const auto r = reconcile(sent, "", stored(session));
  EXPECT_FALSE(r.diverged) << r.why;
  EXPECT_EQ(r.known, 4u);
  // Other arguments are another call.
  sent[1].tool_calls[0].arguments = R"({"city":"Lyon","days":2})";
  EXPECT_TRUE(reconcile(sent, "", stored(session)).diverged);
}

TEST(Reconcile, AToolCallTheClientMadeIsNewInput) {
  // Not a resent conversation: an assistant message of the client's own, then its result.
  const auto r = reconcile({calls("call_9", "{}"), result("call_9", "42")}, "", stored(kConversation));
  EXPECT_FALSE(r.diverged);
  EXPECT_EQ(r.known, 0u);
}

}  // namespace
}  // namespace statefold::gateway::internal
