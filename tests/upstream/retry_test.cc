// Retry decisions, base URLs, auth styles and redaction: the pure pieces of the client.
#include "connectors/upstream/retry.h"

#include <gtest/gtest.h>

#include "connectors/upstream/upstream.h"

namespace statefold::upstream {
namespace {

using std::chrono::milliseconds;

TEST(Retry, RetryableStatuses) {
  for (int status : {429, 500, 502, 503, 504}) EXPECT_TRUE(retryable_status(status)) << status;
  for (int status : {200, 400, 401, 403, 404, 408, 409, 413, 422, 501, 505}) {
    EXPECT_FALSE(retryable_status(status)) << status;
  }
}

TEST(Retry, BackoffDoublesWithinJitterAndCap) {
  const milliseconds base(100), cap(1000);
  EXPECT_EQ(backoff_delay(1, base, cap, 0.0), milliseconds(50));
  EXPECT_EQ(backoff_delay(1, base, cap, 0.999999), milliseconds(99));
  EXPECT_EQ(backoff_delay(2, base, cap, 0.0), milliseconds(100));
  EXPECT_EQ(backoff_delay(3, base, cap, 0.5), milliseconds(300));
  EXPECT_EQ(backoff_delay(10, base, cap, 0.0), milliseconds(500));   // capped: [cap/2, cap]
  EXPECT_EQ(backoff_delay(1000, base, cap, 1.0), milliseconds(1000));
}

TEST(Retry, RetryAfterSeconds) {
  const auto now = std::chrono::system_clock::now();
  EXPECT_EQ(parse_retry_after("1", now), milliseconds(1000));
  EXPECT_EQ(parse_retry_after(" 0 ", now), milliseconds(0));
  EXPECT_EQ(parse_retry_after("120", now), milliseconds(120000));
  EXPECT_FALSE(parse_retry_after("", now));
  EXPECT_FALSE(parse_retry_after("-1", now));
  EXPECT_FALSE(parse_retry_after("1.5", now));
  EXPECT_FALSE(parse_retry_after("soon", now));
  EXPECT_TRUE(parse_retry_after("99999999999999999999", now));  // huge, not an overflow
}

TEST(Retry, RetryAfterHttpDate) {
  // 1994-11-06T08:49:37Z, the RFC's example, in its three forms.
  const auto at = std::chrono::system_clock::from_time_t(784111777);
  const auto now = at - std::chrono::seconds(30);
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), milliseconds(30000));
  EXPECT_EQ(parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now), milliseconds(30000));
  EXPECT_EQ(parse_retry_after("Sun Nov  6 08:49:37 1994", now), milliseconds(30000));
  EXPECT_EQ(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + std::chrono::hours(1)), milliseconds(0));
  EXPECT_FALSE(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT trailing", now));
}

TEST(Retry, RetryAfterMs) {
  EXPECT_EQ(parse_retry_after_ms("250"), milliseconds(250));
  EXPECT_EQ(parse_retry_after_ms("20.7"), milliseconds(20));
  EXPECT_FALSE(parse_retry_after_ms("-3"));
  EXPECT_FALSE(parse_retry_after_ms("abc"));
  EXPECT_FALSE(parse_retry_after_ms("nan"));
}

TEST(BaseUrl, Forms) {
  auto a = parse_base_url("https://api.openai.com/v1/");
  ASSERT_TRUE(a) << a.error().message;
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->host, "api.openai.com");
  EXPECT_EQ(a->port, 443);
  EXPECT_EQ(a->prefix, "/v1");

  auto b = parse_base_url("http://127.0.0.1:8000");
  ASSERT_TRUE(b) << b.error().message;
  EXPECT_FALSE(b->tls);
  EXPECT_EQ(b->port, 8000);
  EXPECT_EQ(b->prefix, "");

  auto c = parse_base_url("https://[::1]:8443/openai/deployments/gpt");
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 8443);
  EXPECT_EQ(c->prefix, "/openai/deployments/gpt");

  EXPECT_EQ(parse_base_url("http://localhost")->port, 80);
}

TEST(BaseUrl, Refusals) {
  for (const char* url : {"", "ftp://x", "api.openai.com", "https://", "https://:443", "https://h:0", "https://h:70000",
                          "https://h:x", "https://user:sk-secret@h/v1", "https://h/v1?k=1", "https://h/v1#f",
                          "https://[::1", "https://h/a b", "https://h:"}) {
    auto parsed = parse_base_url(url);
    EXPECT_FALSE(parsed) << url;
  }
  auto user_info = parse_base_url("https://user@h");
  ASSERT_FALSE(user_info);
  EXPECT_NE(user_info.error().message.find("api_key_env"), std::string::npos);
}

TEST(Auth, AutomaticFollowsTheProvider) {
  Endpoint e;
  e.provider = "anthropic";
  EXPECT_EQ(effective_auth(e), Auth::x_api_key);
  e.provider = "openai_chat";
  EXPECT_EQ(effective_auth(e), Auth::bearer);
  e.auth = Auth::api_key;
  EXPECT_EQ(effective_auth(e), Auth::api_key);
}

TEST(Redact, ReplacesEveryOccurrence) {
  EXPECT_EQ(redact("key sk-abc123 and sk-abc123.", "sk-abc123"), "key [redacted] and [redacted].");
  EXPECT_EQ(redact("short k", "k"), "short k");  // too short to be a key: left alone
  EXPECT_EQ(redact("nothing", "sk-abc123"), "nothing");
}

}  // namespace
}  // namespace statefold::upstream
