// The routing policy of routing.h, and its TOML form (toml++ stays in this file).
#include "connectors/upstream/routing.h"

#include <algorithm>
#include <optional>
#include <set>

#include <toml++/toml.h>

#include "connectors/context/render.h"

namespace statefold::upstream {

namespace {

bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
}

// Exactly: the endpoint's model or one of its models by name. Loosely: its "*" (any model).
bool serves_model(const Endpoint& endpoint, std::string_view model, bool exactly) {
  if (endpoint.model == model) return true;
  return std::any_of(endpoint.models.begin(), endpoint.models.end(),
                     [&](const std::string& m) { return m == model || (!exactly && m == "*"); });
}

// A configuration problem and where it is: an endpoint (route == false) or a route, by index; index -1 = the whole.
struct Problem {
  bool route = false;
  int index = -1;
  std::string message;
};

std::optional<Problem> check(const RoutingConfig& config) {
  std::set<std::string, std::less<>> names;
  for (std::size_t i = 0; i < config.endpoints.size(); ++i) {
    const Endpoint& e = config.endpoints[i];
    const auto problem = [&](std::string message) {
      return Problem{false, static_cast<int>(i), "endpoint '" + e.name + "': " + std::move(message)};
    };
    if (!valid_name(e.name)) {
      return Problem{false, static_cast<int>(i),
                     "endpoint name '" + e.name + "' must be non-empty letters, digits, '-', '_' or '.'"};
    }
    if (!names.insert(e.name).second) return problem("a second endpoint with this name");
    if (!context::parse_provider(e.provider)) {
      return problem("provider '" + e.provider + "' is not one of " + context::provider_names());
    }
    if (e.provider != "echo" || !e.base_url.empty()) {
      auto url = parse_base_url(e.base_url);
      if (!url) return problem(url.error().message);
      if (!e.ca_file.empty() && !url->tls) return problem("ca_file needs an https:// base_url");
    }
    if (!e.api_key_env.empty() && !valid_name(e.api_key_env)) {
      return problem("api_key_env must name an environment variable (the key itself never goes in the config)");
    }
    if (effective_auth(e) == Auth::aws_sigv4) {
      if (!valid_name(e.region)) return problem("AWS SigV4 signing needs a region (e.g. region = \"us-east-1\")");
      if (!valid_name(e.aws_service)) return problem("aws_service must be a service name (e.g. \"bedrock\")");
      if (!e.aws_profile.empty() && !valid_name(e.aws_profile)) {
        return problem("aws_profile must be a profile name of the shared credentials file");
      }
    }
    if (e.max_output_tokens < 0) return problem("max_output_tokens must not be negative");
    if (e.connect_ms <= 0) return problem("connect_timeout_ms must be positive");
    if (e.read_ms <= 0) return problem("read_timeout_ms must be positive");
    if (e.max_retries < 0 || e.max_retries > 10) return problem("max_retries must be within 0..10");
    if (e.backoff_base_ms < 0) return problem("backoff_base_ms must not be negative");
    if (e.backoff_cap_ms < e.backoff_base_ms) return problem("backoff_cap_ms must be at least backoff_base_ms");
    if (e.max_retry_after_ms < 0) return problem("max_retry_after_ms must not be negative");
  }
  std::set<std::string, std::less<>> prefixes;
  for (std::size_t i = 0; i < config.routes.size(); ++i) {
    const Route& r = config.routes[i];
    const auto problem = [&](std::string message) {
      return Problem{true, static_cast<int>(i), "route '" + r.session_prefix + "': " + std::move(message)};
    };
    if (!prefixes.insert(r.session_prefix).second) return problem("a second route with this session_prefix");
    if (r.endpoints.empty()) return problem("endpoints is empty (list endpoint names, or \"*\" for all)");
    bool all = false;
    for (const std::string& name : r.endpoints) {
      if (name == "*") {
        all = true;
      } else if (names.find(name) == names.end()) {
        return problem("unknown endpoint '" + name + "'");
      }
    }
    if (!r.default_endpoint.empty()) {
      if (names.find(r.default_endpoint) == names.end()) {
        return problem("unknown default_endpoint '" + r.default_endpoint + "'");
      }
      if (!all && std::find(r.endpoints.begin(), r.endpoints.end(), r.default_endpoint) == r.endpoints.end()) {
        return problem("default_endpoint '" + r.default_endpoint + "' is not among its endpoints");
      }
    }
  }
  if (!config.default_endpoint.empty() && names.find(config.default_endpoint) == names.end()) {
    return Problem{false, -1, "default_endpoint '" + config.default_endpoint + "' is not a configured endpoint"};
  }
  return std::nullopt;
}

}  // namespace

base::Result<Router> Router::make(RoutingConfig config) {
  for (Endpoint& e : config.endpoints) {
    if (e.base_url.empty()) e.base_url = default_base_url(e);
  }
  if (auto problem = check(config)) return base::make_error("upstream: " + problem->message);
  return Router(std::move(config));
}

const Route* Router::rule_for(std::string_view session_id) const {
  const Route* best = nullptr;
  for (const Route& r : _config.routes) {
    if (session_id.substr(0, r.session_prefix.size()) == r.session_prefix &&
        (best == nullptr || r.session_prefix.size() > best->session_prefix.size())) {
      best = &r;
    }
  }
  return best;
}

std::vector<const Endpoint*> Router::allowed_endpoints(std::string_view session_id) const {
  const Route* rule = rule_for(session_id);
  std::vector<const Endpoint*> out;
  for (const Endpoint& e : _config.endpoints) {
    if (allowed(rule, e)) out.push_back(&e);
  }
  return out;
}

const Endpoint* Router::endpoint(std::string_view name) const {
  for (const Endpoint& e : _config.endpoints) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

bool Router::allowed(const Route* rule, const Endpoint& endpoint) const {
  if (rule == nullptr) return _config.routes.empty();
  return std::any_of(rule->endpoints.begin(), rule->endpoints.end(),
                     [&](const std::string& name) { return name == "*" || name == endpoint.name; });
}

std::string Router::allowed_list(const Route* rule) const {
  std::string out;
  for (const Endpoint& e : _config.endpoints) {
    if (!allowed(rule, e)) continue;
    if (!out.empty()) out += ", ";
    out += e.name;
  }
  return out.empty() ? "none" : out;
}

base::Result<const Endpoint*> Router::route(std::string_view session_id, std::string_view requested) const {
  const std::string session = "session '" + std::string(session_id) + "'";
  if (_config.endpoints.empty()) return base::make_error("no upstream endpoints are configured");
  const Route* rule = rule_for(session_id);
  if (rule == nullptr && !_config.routes.empty()) {
    return base::make_error(session + " matches no upstream route, so it may use no endpoint");
  }
  if (requested.empty()) {
    std::vector<std::string_view> candidates;
    if (rule != nullptr && !rule->default_endpoint.empty()) candidates.push_back(rule->default_endpoint);
    if (!_config.default_endpoint.empty()) candidates.push_back(_config.default_endpoint);
    if (rule != nullptr) {
      for (const std::string& name : rule->endpoints) candidates.push_back(name);
    }
    for (const Endpoint& e : _config.endpoints) candidates.push_back(e.name);
    for (std::string_view name : candidates) {
      const Endpoint* e = endpoint(name);
      if (e != nullptr && allowed(rule, *e)) return e;
    }
    return base::make_error(session + " may use no endpoint");
  }
  if (const Endpoint* e = endpoint(requested)) {
    if (allowed(rule, *e)) return e;
    return base::make_error(session + " may not use endpoint '" + std::string(requested) +
                            "'; allowed: " + allowed_list(rule));
  }
  // An endpoint that names the model wins over one that takes any model ("*"), whatever their order in the file.
  std::string serving;
  for (const bool exactly : {true, false}) {
    for (const Endpoint& e : _config.endpoints) {
      if (!serves_model(e, requested, exactly) || (!exactly && serves_model(e, requested, true))) continue;
      if (allowed(rule, e)) return &e;
      if (!serving.empty()) serving += ", ";
      serving += e.name;
    }
  }
  if (!serving.empty()) {
    return base::make_error(session + " may not use model '" + std::string(requested) + "' (served by " + serving +
                            "); allowed: " + allowed_list(rule));
  }
  return base::make_error("no upstream endpoint is named '" + std::string(requested) + "' or serves that model");
}

// ---------------------------------------------------------------------------------------------------------------------
// TOML.

namespace {

class TomlReader {
 public:
  explicit TomlReader(std::string_view file) : _file(file) {}

  // Messages are built by append, not `"'" + std::string(key) + ...`: at -O3 GCC 12 reports a false -Wrestrict in
  // the operator+ that prepends a literal to a temporary string (GCC bugs 105651, 105329), failing the release build.
  std::string at(const toml::node& node) const {
    std::string out = _file;
    out += ':';
    out += std::to_string(node.source().begin.line);
    out += ": ";
    return out;
  }

  base::Error error(const toml::node& node, std::string_view where, std::string_view message) const {
    std::string text = at(node);
    text.append(where).append(": ").append(message);
    return base::make_error(std::move(text));
  }

  // "'key' needs <what>" at `node`.
  base::Error needs(const toml::node& node, std::string_view where, std::string_view key,
                    std::string_view what) const {
    std::string message;
    message.reserve(key.size() + what.size() + 9);
    message.append("'").append(key).append("' needs ").append(what);
    return error(node, where, message);
  }

  std::optional<base::Error> string(const toml::node& node, std::string_view where, std::string_view key,
                                    std::string& out) const {
    auto value = node.value_exact<std::string>();
    if (!value) return needs(node, where, key, "a string");
    out = std::move(*value);
    return std::nullopt;
  }

  std::optional<base::Error> integer(const toml::node& node, std::string_view where, std::string_view key,
                                     int& out) const {
    auto value = node.value_exact<std::int64_t>();
    if (!value || *value < -1'000'000'000 || *value > 1'000'000'000) {
      return needs(node, where, key, "an integer");
    }
    out = static_cast<int>(*value);
    return std::nullopt;
  }

  std::optional<base::Error> strings(const toml::node& node, std::string_view where, std::string_view key,
                                     std::vector<std::string>& out) const {
    const toml::array* array = node.as_array();
    if (array == nullptr) return needs(node, where, key, "an array of strings");
    out.clear();
    for (const toml::node& item : *array) {
      auto value = item.value_exact<std::string>();
      if (!value) return needs(item, where, key, "an array of strings");
      out.push_back(std::move(*value));
    }
    return std::nullopt;
  }

  std::optional<base::Error> endpoint(const toml::table& table, std::string_view where, Endpoint& e) const {
    for (const auto& [k, node] : table) {
      const std::string_view key = k.str();
      std::optional<base::Error> bad;
      if (key == "name") {
        bad = string(node, where, key, e.name);
      } else if (key == "provider") {
        bad = string(node, where, key, e.provider);
      } else if (key == "base_url") {
        bad = string(node, where, key, e.base_url);
      } else if (key == "api_key_env") {
        bad = string(node, where, key, e.api_key_env);
      } else if (key == "auth") {
        std::string value;
        bad = string(node, where, key, value);
        if (!bad) {
          if (value == "bearer") {
            e.auth = Auth::bearer;
          } else if (value == "x-api-key") {
            e.auth = Auth::x_api_key;
          } else if (value == "api-key") {
            e.auth = Auth::api_key;
          } else if (value == "none") {
            e.auth = Auth::none;
          } else if (value == "aws-sigv4") {
            e.auth = Auth::aws_sigv4;
          } else if (value == "auto") {
            e.auth = Auth::automatic;
          } else {
            bad = error(node, where,
                        "auth '" + value + "' is not one of auto, bearer, x-api-key, api-key, aws-sigv4, none");
          }
        }
      } else if (key == "anthropic_version") {
        bad = string(node, where, key, e.anthropic_version);
      } else if (key == "region") {
        bad = string(node, where, key, e.region);
      } else if (key == "aws_profile") {
        bad = string(node, where, key, e.aws_profile);
      } else if (key == "aws_service") {
        bad = string(node, where, key, e.aws_service);
      } else if (key == "model") {
        bad = string(node, where, key, e.model);
      } else if (key == "models") {
        bad = strings(node, where, key, e.models);
      } else if (key == "max_output_tokens") {
        bad = integer(node, where, key, e.max_output_tokens);
      } else if (key == "ca_file") {
        bad = string(node, where, key, e.ca_file);
      } else if (key == "headers") {
        const toml::table* headers = node.as_table();
        if (headers == nullptr) {
          bad = error(node, where, "'headers' needs a table of strings");
        } else {
          for (const auto& [name, value] : *headers) {
            auto text = value.value_exact<std::string>();
            if (!text) {
              bad = error(value, where, "header '" + std::string(name.str()) + "' needs a string");
              break;
            }
            e.headers.emplace_back(std::string(name.str()), std::move(*text));
          }
        }
      } else if (key == "connect_timeout_ms") {
        bad = integer(node, where, key, e.connect_ms);
      } else if (key == "read_timeout_ms") {
        bad = integer(node, where, key, e.read_ms);
      } else if (key == "max_retries") {
        bad = integer(node, where, key, e.max_retries);
      } else if (key == "backoff_base_ms") {
        bad = integer(node, where, key, e.backoff_base_ms);
      } else if (key == "backoff_cap_ms") {
        bad = integer(node, where, key, e.backoff_cap_ms);
      } else if (key == "max_retry_after_ms") {
        bad = integer(node, where, key, e.max_retry_after_ms);
      } else if (key == "api_key") {
        bad = error(node, where, "keys do not go in the file: put the key in an environment variable and name it "
                                 "with api_key_env");
      } else {
        bad = error(node, where, "unknown key '" + std::string(key) + "'");
      }
      if (bad) return bad;
    }
    if (e.name.empty()) return error(table, where, "'name' is required");
    if (e.provider.empty()) return error(table, where, "'provider' is required");
    if (e.base_url.empty()) e.base_url = default_base_url(e);
    if (e.base_url.empty() && e.provider != "echo") {
      return error(table, where, e.provider == "bedrock_converse" ? "'base_url' or 'region' is required"
                                                                 : "'base_url' is required");
    }
    return std::nullopt;
  }

  std::optional<base::Error> route(const toml::table& table, std::string_view where, Route& r) const {
    bool has_prefix = false;
    for (const auto& [k, node] : table) {
      const std::string_view key = k.str();
      std::optional<base::Error> bad;
      if (key == "session_prefix" || key == "tenant") {
        // A tenant's routes are those of its namespace: what its keys' turns are routed by ("<tenant>/").
        if (has_prefix) return error(node, where, "give 'session_prefix' or 'tenant', not both");
        bad = string(node, where, key, r.session_prefix);
        if (!bad && key == "tenant") {
          if (r.session_prefix.empty() || r.session_prefix.find('/') != std::string::npos) {
            return error(node, where, "'tenant' must be a tenant's name (no '/')");
          }
          r.session_prefix += '/';
        }
        has_prefix = true;
      } else if (key == "endpoints") {
        bad = strings(node, where, key, r.endpoints);
      } else if (key == "default_endpoint") {
        bad = string(node, where, key, r.default_endpoint);
      } else {
        bad = error(node, where, "unknown key '" + std::string(key) + "'");
      }
      if (bad) return bad;
    }
    if (!has_prefix) {
      return error(table, where, "'session_prefix' or 'tenant' is required (session_prefix \"\" matches every session)");
    }
    if (r.endpoints.empty()) return error(table, where, "'endpoints' is required");
    return std::nullopt;
  }

  // Each element of the array of tables at `upstream.<key>`, with its path for messages.
  template <typename F>
  std::optional<base::Error> each_table(const toml::node& node, std::string_view key, F&& f) const {
    const std::string name = "upstream." + std::string(key);
    const toml::array* array = node.as_array();
    if (array == nullptr) return error(node, name, "needs an array of tables ([[" + name + "]])");
    for (std::size_t i = 0; i < array->size(); ++i) {
      const toml::node& item = (*array)[i];
      const std::string where = name + "[" + std::to_string(i) + "]";
      const toml::table* table = item.as_table();
      if (table == nullptr) return error(item, where, "needs a table");
      if (auto bad = f(*table, where)) return bad;
    }
    return std::nullopt;
  }

 private:
  std::string _file;
};

}  // namespace

base::Result<RoutingConfig> parse_routing_toml(std::string_view text, std::string_view file_name) {
  toml::table document;
  try {
    document = toml::parse(text, file_name);
  } catch (const toml::parse_error& e) {
    return base::make_error(std::string(file_name) + ":" + std::to_string(e.source().begin.line) + ": " +
                            std::string(e.description()));
  }
  RoutingConfig config;
  const toml::node* upstream = document.get("upstream");
  if (upstream == nullptr) return config;
  const TomlReader reader(file_name);
  const toml::table* table = upstream->as_table();
  if (table == nullptr) return reader.error(*upstream, "upstream", "needs a table");

  std::vector<const toml::node*> endpoint_nodes, route_nodes;
  for (const auto& [k, node] : *table) {
    const std::string_view key = k.str();
    std::optional<base::Error> bad;
    if (key == "default_endpoint") {
      bad = reader.string(node, "upstream", key, config.default_endpoint);
    } else if (key == "endpoints") {
      bad = reader.each_table(node, key, [&](const toml::table& item, const std::string& where) {
        Endpoint e;
        auto problem = reader.endpoint(item, where, e);
        config.endpoints.push_back(std::move(e));
        endpoint_nodes.push_back(&item);
        return problem;
      });
    } else if (key == "routes") {
      bad = reader.each_table(node, key, [&](const toml::table& item, const std::string& where) {
        Route r;
        auto problem = reader.route(item, where, r);
        config.routes.push_back(std::move(r));
        route_nodes.push_back(&item);
        return problem;
      });
    } else {
      bad = reader.error(node, "upstream", "unknown key '" + std::string(key) + "'");
    }
    if (bad) return *bad;
  }
  if (auto problem = check(config)) {
    const toml::node* node = upstream;
    std::string where = "upstream";
    if (problem->index >= 0) {
      const auto i = static_cast<std::size_t>(problem->index);
      node = problem->route ? route_nodes[i] : endpoint_nodes[i];
      where += std::string(problem->route ? ".routes[" : ".endpoints[") + std::to_string(i) + "]";
    }
    return reader.error(*node, where, problem->message);
  }
  return config;
}

base::Result<Router> load_routing_toml(std::string_view text, std::string_view file_name) {
  auto config = parse_routing_toml(text, file_name);
  if (!config) return config.error();
  auto router = Router::make(std::move(*config));
  if (!router) return base::make_error(std::string(file_name) + ": " + router.error().message);
  return router;
}

}  // namespace statefold::upstream
