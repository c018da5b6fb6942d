// The registry: every provider id has its folder, found by id and by name, with its path, and echo stays offline.
#include "connectors/providers/provider.h"

#include <gtest/gtest.h>

namespace statefold::providers {
namespace {

using context::Provider;

TEST(Registry, EveryProviderByIdAndName) {
  for (Provider p : context::kProviders) {
    EXPECT_EQ(get(p).id(), p);
    EXPECT_EQ(get(p).name(), context::provider_name(p));
    EXPECT_EQ(find(context::provider_name(p)), &get(p));
  }
  EXPECT_EQ(find("bedrock"), nullptr);
}

TEST(Registry, UpstreamPaths) {
  EXPECT_EQ(get(Provider::openai_chat).upstream_path("gpt-4o", false), "/chat/completions");
  EXPECT_EQ(get(Provider::openai_responses).upstream_path("gpt-4o", false), "/responses");
  EXPECT_EQ(get(Provider::anthropic).upstream_path("gpt-4o", false), "/messages");
  EXPECT_EQ(get(Provider::echo).upstream_path("gpt-4o", false), "");
  EXPECT_EQ(get(Provider::bedrock_converse).upstream_path("a:1", true), "/model/a%3A1/converse-stream");
}

TEST(Echo, OfflineAndStreamedInPieces) {
  const providers::Provider& echo = get(Provider::echo);
  EXPECT_TRUE(echo.offline());
  for (Provider p : context::kProviders) {
    EXPECT_EQ(get(p).offline(), p == Provider::echo);
  }
  std::string joined;
  const auto deltas = echo.offline_deltas("echo: I received 2 messages");
  for (const auto& d : deltas) {
    EXPECT_EQ(d.tool_index, -1);
    joined += d.text;
  }
  EXPECT_EQ(joined, "echo: I received 2 messages");
  ASSERT_EQ(deltas.size(), 5u);
  EXPECT_EQ(deltas[1].text, " I");
  EXPECT_TRUE(echo.offline_deltas("").empty());
}

}  // namespace
}  // namespace statefold::providers
