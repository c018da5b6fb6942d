// AWS Signature Version 4 against AWS's published test suite (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, region
// us-east-1, service "service", 2015-08-30T12:36:00Z; the expected canonical requests, strings to sign and
// Authorization headers are the suite's), and the credential sources (environment, shared credentials file).
#include "connectors/upstream/sigv4.h"

#include <cstdlib>
#include <fstream>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace statefold::upstream {
namespace {

const AwsCredentials kSuite{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "", "test"};
const SigningScope kScope{"us-east-1", "service"};
constexpr std::string_view kDate = "20150830T123600Z";
constexpr std::string_view kHost = "example.amazonaws.com";
constexpr std::string_view kCredential =
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, ";

// A request of the suite: its method and target, its headers beyond Host and X-Amz-Date, and its body.
Signature suite(std::string_view method, std::string_view target, Headers extra = {}, std::string_view body = {}) {
  Headers headers{{"Host", std::string(kHost)}};
  for (auto& h : extra) headers.push_back(std::move(h));
  headers.emplace_back("X-Amz-Date", std::string(kDate));
  return sigv4_signature({method, target, headers, body}, kSuite, kScope, kDate);
}

std::string authz(std::string_view signed_headers, std::string_view signature) {
  std::string out(kCredential);
  out += "SignedHeaders=";
  out += signed_headers;
  out += ", Signature=";
  out += signature;
  return out;
}

TEST(SigV4, GetVanilla) {
  const Signature s = suite("GET", "/");
  EXPECT_EQ(s.canonical_request,
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n"
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63");
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
}

TEST(SigV4, PostVanilla) {
  EXPECT_EQ(suite("POST", "/").authorization,
            authz("host;x-amz-date", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"));
}

TEST(SigV4, QueryParametersAreSortedAndEncoded) {
  const Signature s = suite("GET", "/?Param2=value2&Param1=value1");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0");
  EXPECT_EQ(s.authorization,
            authz("host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"));
  EXPECT_EQ(suite("GET", "/?Param1=value1").authorization,
            authz("host;x-amz-date", "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"));
  EXPECT_EQ(suite("POST", "/?Param1=value1").authorization,
            authz("host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"));
  const std::string unreserved = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  EXPECT_EQ(suite("GET", "/?" + unreserved + "=" + unreserved).authorization,
            authz("host;x-amz-date", "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"));
  // ሴ=bar, raw or already percent-encoded on the wire: the same canonical query.
  EXPECT_EQ(suite("GET", "/?\xE1\x88\xB4=bar").authorization,
            authz("host;x-amz-date", "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"));
  EXPECT_EQ(suite("GET", "/?%E1%88%B4=bar").authorization, suite("GET", "/?\xE1\x88\xB4=bar").authorization);
}

TEST(SigV4, PathsAreUriEncoded) {
  EXPECT_EQ(suite("GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz").authorization,
            authz("host;x-amz-date", "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"));
  const Signature utf8 = suite("GET", "/\xE1\x88\xB4");
  EXPECT_EQ(utf8.canonical_request.substr(0, 15), "GET\n/%E1%88%B4\n");
  EXPECT_EQ(utf8.authorization,
            authz("host;x-amz-date", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"));
  // A model id sent percent-encoded is signed encoded once more, as every service but S3 wants (and botocore does).
  EXPECT_NE(suite("POST", "/model/a%3A1/converse").canonical_request.find("\n/model/a%253A1/converse\n"),
            std::string::npos);
}

TEST(SigV4, HeadersAreLowerCasedSortedTrimmedAndJoined) {
  EXPECT_EQ(suite("POST", "/", {{"My-Header1", "value1"}}).authorization,
            authz("host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"));
  EXPECT_EQ(suite("POST", "/", {{"My-Header1", "VALUE1"}}).authorization,
            authz("host;my-header1;x-amz-date", "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"));
  EXPECT_EQ(suite("GET", "/", {{"My-Header1", " value1"}, {"My-Header2", "\"a   b   c\""}}).authorization,
            authz("host;my-header1;my-header2;x-amz-date",
                  "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"));
  EXPECT_EQ(
      suite("GET", "/", {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}}).authorization,
      authz("host;my-header1;x-amz-date", "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"));
  EXPECT_EQ(
      suite("GET", "/",
            {{"My-Header1", "value4"}, {"My-Header1", "value1"}, {"My-Header1", "value3"}, {"My-Header1", "value2"}})
          .authorization,
      authz("host;my-header1;x-amz-date", "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"));
}

TEST(SigV4, BodyAndContentType) {
  const Signature s = suite("POST", "/", {{"Content-Type", "application/x-www-form-urlencoded"}}, "Param1=value1");
  EXPECT_EQ(s.canonical_request,
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
            "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n"
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e");
  EXPECT_EQ(s.string_to_sign,
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
            "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281");
  EXPECT_EQ(s.authorization,
            authz("content-type;host;x-amz-date", "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
  EXPECT_EQ(suite("POST", "/", {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}}, "Param1=value1")
                .authorization,
            authz("content-type;host;x-amz-date", "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"));
}

TEST(SigV4, SessionTokenIsSigned) {
  const std::string token =
      "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuw"
      "thAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQc"
      "HNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/"
      "oLxBA==";
  EXPECT_EQ(suite("POST", "/", {{"X-Amz-Security-Token", token}}).authorization,
            authz("host;x-amz-date;x-amz-security-token",
                  "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"));
}

TEST(SigV4, SignAddsTheAmzHeadersAndSignsThem) {
  AwsCredentials with_token = kSuite;
  with_token.session_token = "TOKEN";
  const SigningRequest r{"POST", "/model/m/converse", {{"host", "h:1"}, {"content-type", "application/json"}}, "{}"};
  const Headers added = sigv4_sign(r, with_token, {"eu-west-3", "bedrock"}, kDate);
  ASSERT_EQ(added.size(), 4u);
  EXPECT_EQ(added[0], (std::pair<std::string, std::string>{"x-amz-date", std::string(kDate)}));
  EXPECT_EQ(added[1].first, "x-amz-content-sha256");
  EXPECT_EQ(added[1].second, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");  // sha256("{}")
  EXPECT_EQ(added[2], (std::pair<std::string, std::string>{"x-amz-security-token", "TOKEN"}));
  EXPECT_EQ(added[3].first, "authorization");
  EXPECT_NE(added[3].second.find("Credential=AKIDEXAMPLE/20150830/eu-west-3/bedrock/aws4_request, SignedHeaders="
                                 "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-security-token, "),
            std::string::npos);
  // Everything signed: another body, region or secret gives another signature.
  SigningRequest other = r;
  other.body = "{ }";
  EXPECT_NE(sigv4_sign(other, with_token, {"eu-west-3", "bedrock"}, kDate)[3], added[3]);
  EXPECT_NE(sigv4_sign(r, with_token, {"eu-west-1", "bedrock"}, kDate)[3], added[3]);
  with_token.secret_access_key += "x";
  EXPECT_NE(sigv4_sign(r, with_token, {"eu-west-3", "bedrock"}, kDate)[3], added[3]);
}

TEST(SigV4, AmzDate) {
  EXPECT_EQ(amz_date(std::chrono::system_clock::time_point(std::chrono::seconds(1440938160))), kDate);
}

constexpr std::string_view kCredentialsFile = R"(# comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key=secretdefault

; another
[work]
aws_access_key_id = AKIDWORK
aws_secret_access_key = secretwork
aws_session_token = tokenwork
region = eu-west-1

[broken]
aws_access_key_id = AKIDBROKEN
)";

TEST(AwsCredentialsFile, ProfilesAreRead) {
  auto d = parse_credentials_file(kCredentialsFile, "default", "F");
  ASSERT_TRUE(d.ok() && d->has_value());
  EXPECT_EQ((*d)->access_key_id, "AKIDDEFAULT");
  EXPECT_EQ((*d)->secret_access_key, "secretdefault");
  EXPECT_EQ((*d)->session_token, "");
  auto w = parse_credentials_file(kCredentialsFile, "work", "F");
  ASSERT_TRUE(w.ok() && w->has_value());
  EXPECT_EQ((*w)->access_key_id, "AKIDWORK");
  EXPECT_EQ((*w)->session_token, "tokenwork");
  EXPECT_EQ((*w)->source, "profile 'work' in F");
  auto missing = parse_credentials_file(kCredentialsFile, "nobody", "F");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());
  auto broken = parse_credentials_file(kCredentialsFile, "broken", "F");
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().message, "profile 'broken' in F has no aws_access_key_id and aws_secret_access_key");
}

// Sets (or unsets, for nullptr) environment variables for one test, and puts them back.
class ScopedEnv {
 public:
  ScopedEnv(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [name, value] : vars) {
      const char* old = std::getenv(name);
      _saved.emplace_back(name, old == nullptr ? std::nullopt : std::optional<std::string>(old));
      if (value == nullptr) {
        unsetenv(name);
      } else {
        setenv(name, value, 1);
      }
    }
  }
  ~ScopedEnv() {
    for (const auto& [name, value] : _saved) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> _saved;
};

TEST(AwsCredentialsSources, EnvironmentThenFileAndAnEndpointProfileOnlyTheFile) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/credentials";
  std::ofstream(file) << kCredentialsFile;
  {
    ScopedEnv env{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                  {"AWS_SECRET_ACCESS_KEY", "secretenv"},
                  {"AWS_SESSION_TOKEN", "tokenenv"},
                  {"AWS_SHARED_CREDENTIALS_FILE", file.c_str()},
                  {"AWS_PROFILE", nullptr}};
    auto c = aws_credentials("");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->access_key_id, "AKIDENV");
    EXPECT_EQ(c->session_token, "tokenenv");
    EXPECT_EQ(c->source, "environment");
    auto named = aws_credentials("work");  // the endpoint names a profile: the environment's keys are not used
    ASSERT_TRUE(named.ok()) << named.error().message;
    EXPECT_EQ(named->access_key_id, "AKIDWORK");
  }
  {
    ScopedEnv env{{"AWS_ACCESS_KEY_ID", nullptr},
                  {"AWS_SECRET_ACCESS_KEY", nullptr},
                  {"AWS_SHARED_CREDENTIALS_FILE", file.c_str()},
                  {"AWS_PROFILE", nullptr}};
    auto c = aws_credentials("");
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->access_key_id, "AKIDDEFAULT");
    ScopedEnv profile{{"AWS_PROFILE", "work"}};
    EXPECT_EQ(aws_credentials("")->access_key_id, "AKIDWORK");
    ScopedEnv nobody{{"AWS_PROFILE", "nobody"}};
    auto missing = aws_credentials("");
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().message,
              "AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set, "
              "and there is no profile 'nobody' in " +
                  file);
  }
  {
    ScopedEnv env{{"AWS_ACCESS_KEY_ID", "AKIDENV"},
                  {"AWS_SECRET_ACCESS_KEY", nullptr},
                  {"AWS_SHARED_CREDENTIALS_FILE", (dir.path() + "/none").c_str()}};
    auto half = aws_credentials("");
    ASSERT_FALSE(half.ok());
    EXPECT_EQ(half.error().message, "AWS credentials: AWS_SECRET_ACCESS_KEY is not set, but AWS_ACCESS_KEY_ID is");
    ScopedEnv no_key{{"AWS_ACCESS_KEY_ID", nullptr}};
    auto none = aws_credentials("");
    ASSERT_FALSE(none.ok());
    EXPECT_NE(none.error().message.find("there is no credentials file " + dir.path() + "/none"), std::string::npos);
  }
}

}  // namespace
}  // namespace statefold::upstream
