// The event-stream parser: field rules of the WHATWG format, and every way the bytes can be split.
#include "connectors/upstream/sse.h"

#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace statefold::upstream {
namespace {

std::vector<SseEvent> parse_all(SseParser& parser, const std::vector<std::string>& pieces) {
  std::vector<SseEvent> out;
  for (const std::string& piece : pieces) {
    EXPECT_TRUE(parser.feed(piece, [&](const SseEvent& e) {
      out.push_back(e);
      return true;
    }));
  }
  return out;
}

std::vector<SseEvent> parse_all(const std::string& text) {
  SseParser parser;
  auto out = parse_all(parser, {text});
  EXPECT_TRUE(parser.clean_end()) << text;
  return out;
}

TEST(Sse, DataEventAndId) {
  const auto events = parse_all("event: delta\nid: 7\ndata: {\"a\":1}\n\ndata: second\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event, "delta");
  EXPECT_EQ(events[0].data, "{\"a\":1}");
  EXPECT_EQ(events[0].id, "7");
  EXPECT_EQ(events[1].event, "");  // the event name does not carry over
  EXPECT_EQ(events[1].data, "second");
  EXPECT_EQ(events[1].id, "7");    // the last event id does
}

TEST(Sse, MultiLineDataCommentsAndDone) {
  const auto events = parse_all(": keep-alive\ndata: line one\ndata:line two\ndata\n\n: ping\n\ndata: [DONE]\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data, "line one\nline two\n");  // "data" alone is an empty line of data
  EXPECT_FALSE(events[0].done());
  EXPECT_TRUE(events[1].done());
}

TEST(Sse, OnlyOneSpaceAfterTheColonIsDropped) {
  const auto events = parse_all("data:  two spaces\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, " two spaces");
}

TEST(Sse, EventWithoutDataIsNotDispatched) {
  const auto events = parse_all("event: ping\n\nevent: x\ndata: y\n\n");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].event, "x");
}

TEST(Sse, RetryAndUnknownFields) {
  const auto events = parse_all("retry: 1500\nfoo: bar\ndata: a\n\nretry: 12x\ndata: b\n\n");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].retry_ms, 1500);
  EXPECT_FALSE(events[1].retry_ms.has_value());
}

TEST(Sse, CrLfAndCrLineEndsAndByteOrderMark) {
  for (const std::string& text : {std::string("\xEF\xBB\xBF" "data: a\r\n\r\ndata: b\r\n\r\n"),
                                 std::string("data: a\r\rdata: b\r\r"), std::string("data: a\n\ndata: b\r\n\n")}) {
    const auto events = parse_all(text);
    ASSERT_EQ(events.size(), 2u) << text;
    EXPECT_EQ(events[0].data, "a");
    EXPECT_EQ(events[1].data, "b");
  }
}

// Every split of a stream into two and three pieces gives the same events, CR LF pairs cut in half included.
TEST(Sse, AnySplitGivesTheSameEvents) {
  const std::string text =
      "\xEF\xBB\xBF: hello\r\nevent: response.output_text.delta\r\ndata: {\"delta\":\"Hi\"}\r\n\r\n"
      "data: a\rdata: b\r\rid: 3\ndata: [DONE]\n\n";
  const auto whole = parse_all(text);
  ASSERT_EQ(whole.size(), 3u);
  for (std::size_t i = 0; i <= text.size(); ++i) {
    for (std::size_t j = i; j <= text.size(); j += 5) {
      SseParser parser;
      const auto split = parse_all(parser, {text.substr(0, i), text.substr(i, j - i), text.substr(j)});
      ASSERT_EQ(split.size(), whole.size()) << i << "," << j;
      for (std::size_t k = 0; k < whole.size(); ++k) {
        EXPECT_EQ(split[k].event, whole[k].event);
        EXPECT_EQ(split[k].data, whole[k].data);
        EXPECT_EQ(split[k].id, whole[k].id);
      }
      EXPECT_TRUE(parser.clean_end());
    }
  }
}

TEST(Sse, CleanEndOnlyBetweenEvents) {
  SseParser parser;
  parse_all(parser, {"data: a\n\n"});
  EXPECT_TRUE(parser.clean_end());
  parse_all(parser, {"data: b\n"});
  EXPECT_FALSE(parser.clean_end());  // a field line without its blank line
  parse_all(parser, {"\n: comment"});
  EXPECT_FALSE(parser.clean_end());  // half a line
  parse_all(parser, {"\n"});
  EXPECT_TRUE(parser.clean_end());
  EXPECT_EQ(parser.events(), 2u);
  EXPECT_EQ(parser.comments(), 1u);
}

TEST(Sse, CallbackStopsTheParse) {
  SseParser parser;
  int seen = 0;
  EXPECT_FALSE(parser.feed("data: 1\n\ndata: 2\n\ndata: 3\n\n", [&](const SseEvent&) { return ++seen < 2; }));
  EXPECT_EQ(seen, 2);
}

}  // namespace
}  // namespace statefold::upstream
