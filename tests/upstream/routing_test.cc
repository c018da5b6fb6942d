// The routing policy (prefix rules, defaults, models, refusals) and its TOML form (errors with file:line).
#include "connectors/upstream/routing.h"

#include <gtest/gtest.h>

namespace statefold::upstream {
namespace {

Endpoint endpoint(std::string name, std::string provider, std::string model = {}) {
  Endpoint e;
  e.name = std::move(name);
  e.provider = std::move(provider);
  e.base_url = e.provider == "echo" ? "" : "https://" + e.name + ".example.com";
  e.model = std::move(model);
  return e;
}

RoutingConfig config() {
  RoutingConfig c;
  c.endpoints = {endpoint("openai", "openai_chat", "gpt-4o"), endpoint("azure", "openai_chat", "gpt-4o"),
                 endpoint("claude", "anthropic", "claude-sonnet-4-5"), endpoint("echo", "echo")};
  c.endpoints[0].models = {"gpt-4o-mini"};
  c.routes = {{"", {"echo"}, ""},
              {"team-a/", {"openai", "claude"}, "claude"},
              {"team-a/eu/", {"azure"}, ""},
              {"ops/", {"*"}, ""}};
  c.default_endpoint = "echo";
  return c;
}

std::string route_name(const Router& router, std::string_view session, std::string_view requested = {}) {
  auto e = router.route(session, requested);
  return e ? (*e)->name : "error: " + e.error().message;
}

TEST(Routing, LongestPrefixWins) {
  auto router = Router::make(config());
  ASSERT_TRUE(router) << router.error().message;
  EXPECT_EQ(router->rule_for("team-a/eu/alice")->session_prefix, "team-a/eu/");
  EXPECT_EQ(router->rule_for("team-a/alice")->session_prefix, "team-a/");
  EXPECT_EQ(router->rule_for("someone")->session_prefix, "");
  EXPECT_EQ(route_name(*router, "team-a/eu/alice"), "azure");   // its only endpoint
  EXPECT_EQ(route_name(*router, "team-a/alice"), "claude");     // the rule's default
  EXPECT_EQ(route_name(*router, "someone"), "echo");
  EXPECT_EQ(route_name(*router, "ops/x"), "echo");              // "*": the configured default
  EXPECT_EQ(route_name(*router, "ops/x", "azure"), "azure");
}

TEST(Routing, ByNameOrModel) {
  auto router = Router::make(config());
  ASSERT_TRUE(router);
  EXPECT_EQ(route_name(*router, "team-a/alice", "openai"), "openai");
  EXPECT_EQ(route_name(*router, "team-a/alice", "gpt-4o"), "openai");
  EXPECT_EQ(route_name(*router, "team-a/alice", "gpt-4o-mini"), "openai");
  EXPECT_EQ(route_name(*router, "team-a/eu/bob", "gpt-4o"), "azure");  // the allowed endpoint serving it
  EXPECT_EQ(route_name(*router, "team-a/alice", "claude-sonnet-4-5"), "claude");
}

TEST(Routing, RefusalsSayWhatIsAllowed) {
  auto router = Router::make(config());
  ASSERT_TRUE(router);
  EXPECT_EQ(route_name(*router, "team-a/eu/bob", "openai"),
            "error: session 'team-a/eu/bob' may not use endpoint 'openai'; allowed: azure");
  EXPECT_EQ(route_name(*router, "x", "claude"), "error: session 'x' may not use endpoint 'claude'; allowed: echo");
  EXPECT_EQ(route_name(*router, "team-a/eu/bob", "claude-sonnet-4-5"),
            "error: session 'team-a/eu/bob' may not use model 'claude-sonnet-4-5' (served by claude); allowed: azure");
  EXPECT_EQ(route_name(*router, "x", "llama-3"), "error: no upstream endpoint is named 'llama-3' or serves that model");
}

TEST(Routing, NoMatchingRuleRefusesOnceRulesExist) {
  auto c = config();
  c.routes.erase(c.routes.begin());  // no "" rule
  auto router = Router::make(c);
  ASSERT_TRUE(router);
  EXPECT_EQ(route_name(*router, "stranger"),
            "error: session 'stranger' matches no upstream route, so it may use no endpoint");
  c.routes.clear();  // no rules at all: everything is allowed
  auto open = Router::make(c);
  ASSERT_TRUE(open);
  EXPECT_EQ(route_name(*open, "stranger", "claude"), "claude");
  EXPECT_EQ(route_name(*open, "stranger"), "echo");
}

TEST(Routing, ModelWildcard) {
  auto c = config();
  c.routes.clear();
  c.default_endpoint.clear();
  c.endpoints.push_back(endpoint("vllm", "openai_chat"));
  c.endpoints.back().models = {"*"};
  auto router = Router::make(c);
  ASSERT_TRUE(router);
  EXPECT_EQ(route_name(*router, "s", "gpt-4o"), "openai");  // named models first, in order
  EXPECT_EQ(route_name(*router, "s", "qwen2.5-7b"), "vllm");
  EXPECT_EQ(route_name(*router, "s"), "openai");            // no default: the first endpoint

  // An endpoint that names the model wins over a wildcard listed before it.
  auto w = config();
  w.routes.clear();
  w.default_endpoint.clear();
  w.endpoints.insert(w.endpoints.begin(), endpoint("any", "openai_chat"));
  w.endpoints.front().models = {"*"};
  auto wildcard_first = Router::make(w);
  ASSERT_TRUE(wildcard_first);
  EXPECT_EQ(route_name(*wildcard_first, "s", "gpt-4o"), "openai");
  EXPECT_EQ(route_name(*wildcard_first, "s", "gpt-4o-mini"), "openai");
  EXPECT_EQ(route_name(*wildcard_first, "s", "qwen2.5-7b"), "any");
}

TEST(Routing, InvalidConfigurations) {
  const auto refused = [](RoutingConfig c) {
    auto router = Router::make(std::move(c));
    return router ? std::string("accepted") : router.error().message;
  };
  auto c = config();
  c.endpoints[1].name = "openai";
  EXPECT_EQ(refused(c), "upstream: endpoint 'openai': a second endpoint with this name");
  c = config();
  c.endpoints[0].provider = "gemini";
  EXPECT_NE(refused(c).find("provider 'gemini' is not one of"), std::string::npos);
  c = config();
  c.endpoints[0].base_url = "api.openai.com";
  EXPECT_NE(refused(c).find("must start with http:// or https://"), std::string::npos);
  c = config();
  c.routes[1].endpoints.push_back("nope");
  EXPECT_EQ(refused(c), "upstream: route 'team-a/': unknown endpoint 'nope'");
  c = config();
  c.routes[2].default_endpoint = "openai";
  EXPECT_EQ(refused(c), "upstream: route 'team-a/eu/': default_endpoint 'openai' is not among its endpoints");
  c = config();
  c.routes.push_back({"ops/", {"echo"}, ""});
  EXPECT_EQ(refused(c), "upstream: route 'ops/': a second route with this session_prefix");
  c = config();
  c.default_endpoint = "missing";
  EXPECT_EQ(refused(c), "upstream: default_endpoint 'missing' is not a configured endpoint");
  c = config();
  c.endpoints[0].read_ms = 0;
  EXPECT_EQ(refused(c), "upstream: endpoint 'openai': read_timeout_ms must be positive");
  c = config();
  c.endpoints[0].base_url = "http://openai.example.com";
  c.endpoints[0].ca_file = "/tmp/ca.pem";
  EXPECT_EQ(refused(c), "upstream: endpoint 'openai': ca_file needs an https:// base_url");
}

constexpr std::string_view kToml = R"(# serve.toml
brokers = "localhost:9092"   # the CLI's own keys are not ours

[upstream]
default_endpoint = "echo"

[[upstream.endpoints]]
name = "openai"
provider = "openai_chat"
base_url = "https://api.openai.com"
api_key_env = "OPENAI_API_KEY"
model = "gpt-4o"
models = ["gpt-4o-mini"]
read_timeout_ms = 120000
max_retries = 3
headers = { "OpenAI-Organization" = "org-1" }

[[upstream.endpoints]]
name = "claude"
provider = "anthropic"
base_url = "https://api.anthropic.com"
api_key_env = "ANTHROPIC_API_KEY"
anthropic_version = "2023-06-01"
max_output_tokens = 32000

[[upstream.endpoints]]
name = "azure"
provider = "openai_chat"
base_url = "https://example.openai.azure.com/openai/deployments/gpt-4o"
api_key_env = "AZURE_OPENAI_API_KEY"
auth = "api-key"
ca_file = "/etc/ssl/private-ca.pem"

[[upstream.endpoints]]
name = "echo"
provider = "echo"

[[upstream.routes]]
session_prefix = ""
endpoints = ["echo"]

[[upstream.routes]]
session_prefix = "team-a/"
endpoints = ["openai", "claude", "azure"]
default_endpoint = "claude"
)";

TEST(RoutingToml, Loads) {
  auto config = parse_routing_toml(kToml, "serve.toml");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->endpoints.size(), 4u);
  const Endpoint& openai = config->endpoints[0];
  EXPECT_EQ(openai.api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(openai.read_ms, 120000);
  EXPECT_EQ(openai.connect_ms, 5000);  // the default
  EXPECT_EQ(openai.max_retries, 3);
  EXPECT_EQ(openai.max_output_tokens, 0);  // none: the client's cap is sent as is
  EXPECT_EQ(config->endpoints[1].max_output_tokens, 32000);
  ASSERT_EQ(openai.headers.size(), 1u);
  EXPECT_EQ(openai.headers[0].first, "OpenAI-Organization");
  EXPECT_EQ(openai.models, std::vector<std::string>{"gpt-4o-mini"});
  EXPECT_EQ(config->endpoints[2].auth, Auth::api_key);
  EXPECT_EQ(config->endpoints[2].ca_file, "/etc/ssl/private-ca.pem");
  ASSERT_EQ(config->routes.size(), 2u);
  EXPECT_EQ(config->routes[1].default_endpoint, "claude");
  EXPECT_EQ(config->default_endpoint, "echo");

  auto router = load_routing_toml(kToml, "serve.toml");
  ASSERT_TRUE(router) << router.error().message;
  EXPECT_EQ(route_name(*router, "team-a/1"), "claude");
  EXPECT_EQ(route_name(*router, "b", "openai"), "error: session 'b' may not use endpoint 'openai'; allowed: echo");
}

TEST(RoutingToml, NoUpstreamTableIsEmpty) {
  auto config = parse_routing_toml("brokers = \"x\"\n", "serve.toml");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_TRUE(config->endpoints.empty());
}

std::string toml_error(std::string_view text) {
  auto config = parse_routing_toml(text, "f.toml");
  return config ? std::string("accepted") : config.error().message;
}

TEST(RoutingToml, ErrorsNameFileAndLine) {
  EXPECT_EQ(toml_error("[upstream]\n[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\nbse_url = \"x\"\n"),
            "f.toml:5: upstream.endpoints[0]: unknown key 'bse_url'");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\nmax_retries = \"3\"\n"),
            "f.toml:4: upstream.endpoints[0]: 'max_retries' needs an integer");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\nmax_output_tokens = -1\n"),
            "f.toml:1: upstream.endpoints[0]: endpoint 'a': max_output_tokens must not be negative");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\n\n[[upstream.endpoints]]\n"
                       "name = \"b\"\nprovider = \"chatgpt\"\nbase_url = \"http://x\"\n"),
            "f.toml:5: upstream.endpoints[1]: endpoint 'b': provider 'chatgpt' is not one of openai_chat, "
            "openai_responses, anthropic, bedrock_converse, echo");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"openai_chat\"\n"),
            "f.toml:1: upstream.endpoints[0]: 'base_url' is required");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\n[[upstream.routes]]\n"
                       "session_prefix = \"\"\nendpoints = [\"a\", \"b\"]\n"),
            "f.toml:4: upstream.routes[0]: route '': unknown endpoint 'b'");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"openai_chat\"\nbase_url = \"http://h\"\n"
                       "api_key = \"sk-live-123\"\n"),
            "f.toml:5: upstream.endpoints[0]: keys do not go in the file: put the key in an environment variable "
            "and name it with api_key_env");
  EXPECT_EQ(toml_error("[upstream]\ndefault_endpoint = \"a\"\ntimeout = 3\n"),
            "f.toml:3: upstream: unknown key 'timeout'");
  EXPECT_EQ(toml_error("[upstream]\nendpoints = 3\n"),
            "f.toml:2: upstream.endpoints: needs an array of tables ([[upstream.endpoints]])");
  const std::string syntax = toml_error("[upstream]\n\nname = = \"x\"\n");
  EXPECT_EQ(syntax.rfind("f.toml:3: ", 0), 0u) << syntax;
}

TEST(RoutingToml, ATenantsRouteIsItsNamespace) {
  constexpr std::string_view kTenants = R"(
[[upstream.endpoints]]
name = "cheap"
provider = "echo"
[[upstream.endpoints]]
name = "paid"
provider = "echo"
[[upstream.routes]]
session_prefix = ""
endpoints = ["cheap"]
[[upstream.routes]]
tenant = "vip"
endpoints = ["paid"]
)";
  auto router = load_routing_toml(kTenants, "serve.toml");
  ASSERT_TRUE(router) << router.error().message;
  EXPECT_EQ(router->config().routes[1].session_prefix, "vip/");
  EXPECT_EQ(route_name(*router, "vip/"), "paid");
  EXPECT_EQ(route_name(*router, "vipers/x"), "cheap");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\n[[upstream.routes]]\n"
                       "tenant = \"a/b\"\nendpoints = [\"a\"]\n"),
            "f.toml:5: upstream.routes[0]: 'tenant' must be a tenant's name (no '/')");
  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"echo\"\n[[upstream.routes]]\n"
                       "tenant = \"t\"\nsession_prefix = \"t/\"\nendpoints = [\"a\"]\n"),
            "f.toml:5: upstream.routes[0]: give 'session_prefix' or 'tenant', not both");
}

TEST(RoutingToml, BedrockEndpoints) {
  constexpr std::string_view kBedrock = R"(
[[upstream.endpoints]]
name = "bedrock"
provider = "bedrock_converse"
region = "eu-west-3"
model = "anthropic.claude-3-5-sonnet-20240620-v1:0"

[[upstream.endpoints]]
name = "bedrock-local"
provider = "bedrock_converse"
base_url = "http://127.0.0.1:9000"
region = "us-east-1"
aws_profile = "work"
)";
  auto config = parse_routing_toml(kBedrock, "serve.toml");
  ASSERT_TRUE(config) << config.error().message;
  const Endpoint& bedrock = config->endpoints[0];
  EXPECT_EQ(bedrock.base_url, "https://bedrock-runtime.eu-west-3.amazonaws.com");  // from the region
  EXPECT_EQ(bedrock.region, "eu-west-3");
  EXPECT_EQ(bedrock.aws_service, "bedrock");
  EXPECT_EQ(effective_auth(bedrock), Auth::aws_sigv4);
  EXPECT_EQ(config->endpoints[1].base_url, "http://127.0.0.1:9000");
  EXPECT_EQ(config->endpoints[1].aws_profile, "work");
  ASSERT_TRUE(load_routing_toml(kBedrock, "serve.toml"));

  EXPECT_EQ(toml_error("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"bedrock_converse\"\n"),
            "f.toml:1: upstream.endpoints[0]: 'base_url' or 'region' is required");
  auto no_region = load_routing_toml(
      "[[upstream.endpoints]]\nname = \"a\"\nprovider = \"bedrock_converse\"\nbase_url = \"http://h\"\n", "f.toml");
  ASSERT_FALSE(no_region);
  EXPECT_EQ(no_region.error().message,
            "f.toml:1: upstream.endpoints[0]: endpoint 'a': AWS SigV4 signing needs a region (e.g. region = "
            "\"us-east-1\")");
  // Any endpoint may sign with SigV4 (a gateway in front of Bedrock), given a region.
  auto signed_chat = parse_routing_toml("[[upstream.endpoints]]\nname = \"a\"\nprovider = \"openai_chat\"\n"
                                        "base_url = \"http://h\"\nauth = \"aws-sigv4\"\nregion = \"us-west-2\"\n",
                                        "f.toml");
  ASSERT_TRUE(signed_chat) << signed_chat.error().message;
  EXPECT_EQ(effective_auth(signed_chat->endpoints[0]), Auth::aws_sigv4);
  // Router::make fills the base URL of a configuration built in code too.
  RoutingConfig built;
  Endpoint e;
  e.name = "b";
  e.provider = "bedrock_converse";
  e.region = "ap-south-1";
  built.endpoints.push_back(e);
  auto router = Router::make(built);
  ASSERT_TRUE(router) << router.error().message;
  EXPECT_EQ(router->endpoint("b")->base_url, "https://bedrock-runtime.ap-south-1.amazonaws.com");
}

}  // namespace
}  // namespace statefold::upstream
