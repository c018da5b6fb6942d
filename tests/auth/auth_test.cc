#include "engine/auth/auth.h"

#include <gtest/gtest.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

namespace statefold::auth {
namespace {

using namespace std::chrono_literals;

// A config with the given keys ("name", key text, roles TOML list, rate).
std::string config_of(const std::vector<std::tuple<std::string, std::string, std::string, double>>& keys) {
  std::string text = "[auth]\n";
  for (const auto& [name, digest, roles, rate] : keys) {
    text += "[[auth.keys]]\nname = \"" + name + "\"\ndigest = \"" + digest + "\"\nroles = " + roles +
            "\nrequests_per_second = " + std::to_string(rate) + "\n";
  }
  return text;
}

const auto kNow = std::chrono::steady_clock::time_point(1h);

TEST(Auth, NewKeysAreRandomAndTheirDigestAdmitsThem) {
  const NewKey a = new_key();
  const NewKey b = new_key();
  EXPECT_NE(a.key, b.key);
  EXPECT_EQ(a.key.size(), 3u + 64u);
  EXPECT_TRUE(a.digest.starts_with("sha256:"));
  EXPECT_EQ(a.digest.find(a.key.substr(3)), std::string::npos) << "the digest must not contain the key";
  auto config = parse_config(config_of({{"app", a.digest, R"(["read"])", 0}}), "t.toml");
  ASSERT_TRUE(config) << config.error().message;
  Gate gate(std::move(*config));
  auto admitted = gate.admit("GET", "/v1/sessions", "Bearer " + a.key, kNow);
  ASSERT_TRUE(std::holds_alternative<Principal>(admitted));
  EXPECT_EQ(std::get<Principal>(admitted).key_name, "app");
  auto other = gate.admit("GET", "/v1/sessions", "Bearer " + b.key, kNow);
  ASSERT_TRUE(std::holds_alternative<Refusal>(other));
  EXPECT_EQ(std::get<Refusal>(other).status, 401);
  EXPECT_EQ(std::get<Refusal>(other).code, "invalid_api_key");
}

TEST(Auth, MissingAndMalformedAuthorizationAre401AndOpenRoutesNeedNone) {
  const NewKey a = new_key();
  Gate gate(*parse_config(config_of({{"app", a.digest, R"(["read","write","chat","admin"])", 0}}), "t.toml"));
  ASSERT_TRUE(gate.enabled());
  for (std::optional<std::string_view> header :
       {std::optional<std::string_view>{}, std::optional<std::string_view>{"Basic abc"},
        std::optional<std::string_view>{"Bearer"}, std::optional<std::string_view>{a.key}}) {
    auto r = gate.admit("GET", "/v1/sessions/x", header, kNow);
    ASSERT_TRUE(std::holds_alternative<Refusal>(r)) << header.value_or("(none)");
    EXPECT_EQ(std::get<Refusal>(r).status, 401);
    EXPECT_EQ(std::get<Refusal>(r).message.find(a.key), std::string::npos) << "a refusal never quotes a key";
  }
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/healthz", std::nullopt, kNow)));
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/readyz", std::nullopt, kNow)));
  EXPECT_TRUE(std::holds_alternative<Refusal>(gate.admit("GET", "/metrics", std::nullopt, kNow)));
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/v1/x", "bearer " + a.key, kNow)))
      << "the scheme is case-insensitive (RFC 9110)";
}

TEST(Auth, EachRouteNeedsItsRole) {
  struct Case {
    const char* method;
    const char* path;
    Role role;
  };
  const Case cases[] = {
      {"GET", "/v1/sessions", Role::read},
      {"GET", "/v1/sessions/s1/history", Role::read},
      {"GET", "/v1/sessions/s1/context", Role::read},
      {"GET", "/v1/responses/resp_1", Role::read},
      {"GET", "/v1/models", Role::read},
      {"GET", "/metrics", Role::read},
      {"POST", "/v1/sessions/s1/events", Role::write},
      {"POST", "/v1/chat/completions", Role::chat},
      {"POST", "/v1/responses", Role::chat},
      {"POST", "/v1/sessions/s1/fork", Role::admin},
      {"POST", "/v1/snapshots", Role::admin},
      {"GET", "/v1/snapshots", Role::admin},
      {"GET", "/v1/cluster", Role::admin},
      {"DELETE", "/v1/anything", Role::admin},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(required_role(c.method, c.path, false), c.role) << c.method << " " << c.path;
  }
  EXPECT_EQ(required_role("GET", "/metrics", true), std::nullopt);

  const NewKey reader = new_key();
  const NewKey chatter = new_key();
  Gate gate(*parse_config(
      config_of({{"reader", reader.digest, R"(["read"])", 0}, {"chatter", chatter.digest, R"(["chat"])", 0}}),
      "t.toml"));
  for (const auto& c : cases) {
    const bool reader_may = c.role == Role::read;
    auto r = gate.admit(c.method, c.path, "Bearer " + reader.key, kNow);
    EXPECT_EQ(std::holds_alternative<Principal>(r), reader_may) << "reader: " << c.method << " " << c.path;
    if (!reader_may) {
      EXPECT_EQ(std::get<Refusal>(r).status, 403);
      EXPECT_NE(std::get<Refusal>(r).message.find(role_name(c.role)), std::string::npos);
      EXPECT_NE(std::get<Refusal>(r).message.find("reader"), std::string::npos);
    }
    const bool chatter_may = c.role == Role::chat;
    EXPECT_EQ(std::holds_alternative<Principal>(gate.admit(c.method, c.path, "Bearer " + chatter.key, kNow)),
              chatter_may)
        << "chatter: " << c.method << " " << c.path;
  }
}

TEST(Auth, ARateLimitRefusesWithRetryAfterAndRecovers) {
  const NewKey a = new_key();
  Gate gate(*parse_config(config_of({{"slow", a.digest, R"(["read"])", 2}}), "t.toml"));
  const std::string bearer = "Bearer " + a.key;
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/v1/sessions", bearer, kNow)));
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/v1/sessions", bearer, kNow)));
  auto over = gate.admit("GET", "/v1/sessions", bearer, kNow);
  ASSERT_TRUE(std::holds_alternative<Refusal>(over));
  EXPECT_EQ(std::get<Refusal>(over).status, 429);
  EXPECT_EQ(std::get<Refusal>(over).code, "rate_limit_exceeded");
  EXPECT_GE(std::get<Refusal>(over).retry_after, 1s);
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/v1/sessions", bearer, kNow + 600ms)));
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/healthz", std::nullopt, kNow + 600ms)))
      << "open routes are not counted";
}

TEST(Auth, NoKeysConfiguredAdmitsEveryone) {
  auto config = parse_config("[upstream]\n", "t.toml");
  ASSERT_TRUE(config);
  Gate gate(std::move(*config));
  EXPECT_FALSE(gate.enabled());
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("POST", "/v1/snapshots", std::nullopt, kNow)));
}

TEST(Auth, ATenantsKeyOwnsItsNamespaceAndNothingElse) {
  const NewKey acme = new_key();
  const NewKey operator_key = new_key();
  Gate gate(*parse_config("[auth]\n[[auth.keys]]\nname = \"acme-app\"\ndigest = \"" + acme.digest +
                              "\"\ntenant = \"acme\"\nroles = [\"read\", \"write\", \"chat\", \"admin\"]\n"
                              "[[auth.keys]]\nname = \"ops\"\ndigest = \"" +
                              operator_key.digest + "\"\nroles = [\"read\", \"admin\"]\n",
                          "t.toml"));
  auto admitted = gate.admit("GET", "/v1/sessions/acme/x", "Bearer " + acme.key, kNow);
  ASSERT_TRUE(std::holds_alternative<Principal>(admitted));
  const Principal& tenant = std::get<Principal>(admitted);
  EXPECT_EQ(tenant.tenant, "acme");
  EXPECT_EQ(tenant.session_prefix(), "acme/");
  EXPECT_TRUE(tenant.owns("acme/x"));
  EXPECT_TRUE(tenant.owns("acme/x/y"));
  for (std::string_view foreign : {"acme", "acme/", "acmeco/x", "other/acme/x", "x", ""}) {
    EXPECT_FALSE(tenant.owns(foreign)) << foreign;
  }
  // Routes follow the tenant, never the rest of the id the client picked.
  EXPECT_EQ(tenant.routing_key("acme/vip/anyone"), "acme/");
  EXPECT_EQ(tenant.routing_key("acme/x"), "acme/");

  auto ops = gate.admit("GET", "/v1/sessions", "Bearer " + operator_key.key, kNow);
  ASSERT_TRUE(std::holds_alternative<Principal>(ops));
  EXPECT_TRUE(std::get<Principal>(ops).owns("acme/x"));
  EXPECT_TRUE(std::get<Principal>(ops).owns("anything"));
  EXPECT_EQ(std::get<Principal>(ops).routing_key("vip/anyone"), "vip/anyone");

  // Snapshots, the cluster's members and metrics cover every tenant: not for a tenant's key, even an admin's.
  for (auto [method, path] : {std::pair{"POST", "/v1/snapshots"}, std::pair{"GET", "/v1/snapshots"},
                              std::pair{"GET", "/metrics"}, std::pair{"GET", "/v1/cluster"}}) {
    auto refused = gate.admit(method, path, "Bearer " + acme.key, kNow);
    ASSERT_TRUE(std::holds_alternative<Refusal>(refused)) << path;
    EXPECT_EQ(std::get<Refusal>(refused).status, 403);
    EXPECT_NE(std::get<Refusal>(refused).message.find("every tenant"), std::string::npos);
    EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit(method, path, "Bearer " + operator_key.key, kNow)));
  }
  EXPECT_TRUE(unrestricted().owns("acme/x"));
  EXPECT_TRUE(unrestricted().may(Role::admin));
}

TEST(Auth, ConcurrentTurnsAreLimitedPerKeyAndFreedWhenATurnEnds) {
  const NewKey a = new_key();
  const NewKey b = new_key();
  Gate gate(*parse_config("[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + a.digest +
                              "\"\nroles = [\"chat\", \"read\"]\nmax_concurrent_turns = 2\n[[auth.keys]]\nname = "
                              "\"b\"\ndigest = \"" +
                              b.digest + "\"\nroles = [\"chat\"]\n",
                          "t.toml"));
  const std::string bearer = "Bearer " + a.key;
  auto first = gate.admit("POST", "/v1/chat/completions", bearer, kNow);
  auto second = gate.admit("POST", "/v1/responses", bearer, kNow);
  ASSERT_TRUE(std::holds_alternative<Principal>(first));
  ASSERT_TRUE(std::holds_alternative<Principal>(second));
  auto third = gate.admit("POST", "/v1/chat/completions", bearer, kNow);
  ASSERT_TRUE(std::holds_alternative<Refusal>(third));
  EXPECT_EQ(std::get<Refusal>(third).status, 429);
  EXPECT_EQ(std::get<Refusal>(third).code, "rate_limit_exceeded");
  EXPECT_GE(std::get<Refusal>(third).retry_after, 1s);
  EXPECT_NE(std::get<Refusal>(third).message.find("turns in progress"), std::string::npos);
  // Reads are not turns; another key has its own count.
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("GET", "/v1/responses/resp_1", bearer, kNow)));
  EXPECT_TRUE(std::holds_alternative<Principal>(gate.admit("POST", "/v1/chat/completions", "Bearer " + b.key, kNow)));
  // A copy of the principal (the gateway's) keeps the slot; the last one going frees it.
  Principal kept = std::get<Principal>(first);
  first = Refusal{};
  EXPECT_TRUE(std::holds_alternative<Refusal>(gate.admit("POST", "/v1/chat/completions", bearer, kNow)));
  kept = Principal{};
  auto again = gate.admit("POST", "/v1/chat/completions", bearer, kNow);
  EXPECT_TRUE(std::holds_alternative<Principal>(again));
}

TEST(Auth, TokenBudgetsCoverTheUtcDayOrMonthAndSayWhenTheyRenew) {
  using namespace std::chrono;
  const auto now = sys_days(2026y / December / 31) + 23h + 59min + 30s;
  const BudgetWindow day = budget_window(Period::day, now);
  EXPECT_EQ(day.from_day, "2026-12-31");
  EXPECT_EQ(day.through_day, "2026-12-31");
  EXPECT_EQ(day.until_reset, 30s);
  const BudgetWindow month = budget_window(Period::month, now);
  EXPECT_EQ(month.from_day, "2026-12-01");
  EXPECT_EQ(month.through_day, "2026-12-31");
  EXPECT_EQ(month.until_reset, 30s);
  EXPECT_EQ(budget_window(Period::month, sys_days(2027y / February / 10)).until_reset, hours(24 * 19));

  const NewKey a = new_key();
  auto config = parse_config("[auth]\n[[auth.keys]]\nname = \"capped\"\ndigest = \"" + a.digest +
                                 "\"\nroles = [\"chat\"]\ntoken_budget = 1000\nbudget_period = \"month\"\n",
                             "t.toml");
  ASSERT_TRUE(config) << config.error().message;
  Gate gate(std::move(*config));
  auto admitted = gate.admit("POST", "/v1/chat/completions", "Bearer " + a.key, kNow);
  ASSERT_TRUE(std::holds_alternative<Principal>(admitted));
  const Principal& capped = std::get<Principal>(admitted);
  EXPECT_EQ(capped.token_budget, 1000u);
  EXPECT_EQ(capped.budget_period, Period::month);
  EXPECT_FALSE(over_budget(capped, 999, month));
  auto refused = over_budget(capped, 1000, month);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->status, 429);
  EXPECT_EQ(refused->code, "insufficient_quota");
  EXPECT_EQ(refused->retry_after, 30s);
  EXPECT_NE(refused->message.find("1000 of its 1000 tokens this month"), std::string::npos) << refused->message;
  EXPECT_FALSE(over_budget(unrestricted(), 1u << 30, day)) << "no budget, no limit";
}

TEST(Auth, ConfigErrorsNameTheFileLineAndField) {
  struct Case {
    std::string text;
    std::string wanted;
  };
  const std::string digest = new_key().digest;
  const Case cases[] = {
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest + "\"\nroles = [\"root\"]\n",
       "t.toml:5: auth.keys.roles: unknown role"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"md5:00\"\nroles = [\"read\"]\n", "t.toml:4: auth.keys.digest"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\nkey = \"sf-123\"\n", "t.toml:4: auth.keys.key: unknown field"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest + "\"\n", "needs at least one role"},
      {"[auth]\n[[auth.keys]]\ndigest = \"" + digest + "\"\nroles = [\"read\"]\n", "needs a name"},
      {"[auth]\nopen = true\n", "t.toml:2: auth: unknown key 'open'"},
      {"[auth.jwt]\nissuer = \"i\"\naudience = \"a\"\n", "auth.jwt: 'public_key_file' is required"},
      {"[auth.jwt]\nissuer = \"i\"\naudience = \"a\"\npublic_key_file = \"k\"\nalgorithms = [\"HS256\"]\n",
       "t.toml:5: auth.jwt.algorithms: accepted are RS256"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest + "\"\ntenant = \"a/b\"\nroles = [\"read\"]\n",
       "t.toml:5: auth.keys.tenant: expected 1..64"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest + "\"\nroles = [\"chat\"]\nmax_concurrent_turns = -1\n",
       "t.toml:6: auth.keys.max_concurrent_turns"},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest + "\"\nroles = [\"chat\"]\nbudget_period = \"week\"\n",
       "t.toml:6: auth.keys.budget_period: expected \"day\" or \"month\""},
      {"[auth]\n[[auth.keys]]\nname = \"a\"\ndigest = \"" + digest +
           "\"\nroles = [\"read\"]\n[[auth.keys]]\nname = \"b\"\ndigest = \"" + digest + "\"\nroles = [\"read\"]\n",
       "same digest as key \"a\""},
  };
  for (const auto& c : cases) {
    auto parsed = parse_config(c.text, "t.toml");
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_NE(parsed.error().message.find(c.wanted), std::string::npos) << parsed.error().message;
  }
}

// A key pair for signing test tokens, as PEM.
struct SigningKey {
  std::string private_pem;
  std::string public_pem;
};

SigningKey make_signing_key() {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  EXPECT_TRUE(key);
  auto pem = [](auto write) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    write(bio.get());
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
  };
  return {pem([&](BIO* b) { PEM_write_bio_PrivateKey(b, key.get(), nullptr, nullptr, 0, nullptr, nullptr); }),
          pem([&](BIO* b) { PEM_write_bio_PUBKEY(b, key.get()); })};
}

// A token with `claims` (JSON), signed with `alg` and `key` (the private PEM, or an HMAC secret).
std::string mint(const std::string& claims, jwt_alg_t alg, const std::string& key) {
  jwt_t* raw = nullptr;
  EXPECT_EQ(jwt_new(&raw), 0);
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt(raw, jwt_free);
  EXPECT_EQ(jwt_add_grants_json(jwt.get(), claims.c_str()), 0) << claims;
  EXPECT_EQ(jwt_set_alg(jwt.get(), alg, alg == JWT_ALG_NONE ? nullptr : reinterpret_cast<const unsigned char*>(key.data()),
                        alg == JWT_ALG_NONE ? 0 : static_cast<int>(key.size())),
            0);
  char* token = jwt_encode_str(jwt.get());
  EXPECT_NE(token, nullptr);
  std::string out(token);
  std::free(token);
  return out;
}

TEST(Auth, JwtBearerTokensGiveTenantRolesAndNameAndAreCheckedInEveryOtherRespect) {
  const SigningKey idp = make_signing_key();
  const SigningKey stranger = make_signing_key();
  auto config = parse_config(
      "[auth.jwt]\nissuer = \"https://idp.test/\"\naudience = \"statefold\"\npublic_key_file = \"idp.pem\"\n"
      "roles_claim = \"scope\"\n",
      "t.toml");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(config->jwt);
  EXPECT_FALSE(load_jwt_key(*config->jwt, "not a key"));
  ASSERT_TRUE(load_jwt_key(*config->jwt, idp.public_pem));
  Gate gate(std::move(*config));
  ASSERT_TRUE(gate.enabled()) << "tokens alone turn authentication on";

  using namespace std::chrono;
  const auto wall = sys_days(2026y / December / 4) + 12h;
  const long now_s = duration_cast<seconds>(wall.time_since_epoch()).count();
  auto claims = [&](std::string extra, long exp_offset = 600) {
    return R"({"iss":"https://idp.test/","aud":["other","statefold"],"sub":"alice","tenant":"acme",)"
           R"("scope":"read chat openid","exp":)" + std::to_string(now_s + exp_offset) + extra + "}";
  };
  auto admit = [&](const std::string& token, const char* method = "POST", const char* path = "/v1/chat/completions") {
    return gate.admit(method, path, "Bearer " + token, kNow, wall);
  };

  auto good = admit(mint(claims(""), JWT_ALG_ES256, idp.private_pem));
  ASSERT_TRUE(std::holds_alternative<Principal>(good)) << std::get<Refusal>(good).message;
  const Principal& alice = std::get<Principal>(good);
  EXPECT_EQ(alice.key_name, "jwt:alice");
  EXPECT_EQ(alice.tenant, "acme");
  EXPECT_TRUE(alice.may(Role::read) && alice.may(Role::chat));
  EXPECT_FALSE(alice.may(Role::write) || alice.may(Role::admin)) << "openid is not a role; write was not given";

  struct Case {
    std::string token;
    int status;
    std::string says;
  };
  const Case cases[] = {
      {mint(claims("", -120), JWT_ALG_ES256, idp.private_pem), 401, "expired"},
      {mint(claims(R"(,"nbf":)" + std::to_string(now_s + 3600)), JWT_ALG_ES256, idp.private_pem), 401, "not valid yet"},
      {mint(claims("", 600), JWT_ALG_ES256, stranger.private_pem), 401, "not a JWT signed by the configured key"},
      // The classic confusion: HMAC keyed with the public key's text, which anyone may have.
      {mint(claims(""), JWT_ALG_HS256, idp.public_pem), 401, "algorithm HS256 is not accepted"},
      {mint(claims(""), JWT_ALG_NONE, ""), 401, ""},
      {mint(R"({"iss":"https://evil.test/","aud":"statefold","tenant":"acme","exp":)" + std::to_string(now_s + 60) + "}",
            JWT_ALG_ES256, idp.private_pem),
       401, "not issued by https://idp.test/"},
      {mint(R"({"iss":"https://idp.test/","aud":"other","tenant":"acme","exp":)" + std::to_string(now_s + 60) + "}",
            JWT_ALG_ES256, idp.private_pem),
       401, "not meant for audience statefold"},
      {mint(R"({"iss":"https://idp.test/","aud":"statefold","tenant":"acme"})", JWT_ALG_ES256, idp.private_pem), 401,
       "no exp claim"},
      {mint(R"({"iss":"https://idp.test/","aud":"statefold","scope":"chat","exp":)" + std::to_string(now_s + 60) + "}",
            JWT_ALG_ES256, idp.private_pem),
       401, "must name the tenant"},
      {"a.b.c", 401, ""},
  };
  for (const auto& c : cases) {
    auto r = admit(c.token);
    ASSERT_TRUE(std::holds_alternative<Refusal>(r)) << c.says;
    EXPECT_EQ(std::get<Refusal>(r).status, c.status) << c.says;
    EXPECT_NE(std::get<Refusal>(r).message.find(c.says), std::string::npos) << std::get<Refusal>(r).message;
  }
  // Roles and tenant-wide routes as for keys.
  const std::string token = mint(claims(""), JWT_ALG_ES256, idp.private_pem);
  auto write = admit(token, "POST", "/v1/sessions/acme%2Fx/events");
  ASSERT_TRUE(std::holds_alternative<Refusal>(write));
  EXPECT_EQ(std::get<Refusal>(write).status, 403);
  EXPECT_NE(std::get<Refusal>(write).message.find("jwt:alice"), std::string::npos);
  auto metrics = admit(token, "GET", "/metrics");
  ASSERT_TRUE(std::holds_alternative<Refusal>(metrics));
  EXPECT_EQ(std::get<Refusal>(metrics).status, 403);
}

}  // namespace
}  // namespace statefold::auth
