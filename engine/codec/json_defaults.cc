// json_to_flatbuffers with envelope defaults: the missing fields are spliced into the JSON text, after the client's
// own, because that is where the HTTP API put them (boost::json appends new keys) and the parser lays objects out in
// the order it meets them: any other placement would change the canonical bytes of events appended before.
#include <string>
#include <vector>

#include "codec/build.h"
#include "codec/codec.h"
#include "statefold/schema/events_generated.h"

namespace statefold::codec {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// The JSON string starting at text[i] == '"', unescaped; i is left on its closing quote. nullopt if it is not one.
// A key may be written with escapes ("session\u005fid"), and the parser would take it for session_id.
std::optional<std::string> read_string(std::string_view text, std::size_t& i) {
  std::string out;
  auto hex4 = [&](std::size_t at, std::uint32_t& v) {
    if (at + 4 > text.size()) return false;
    v = 0;
    for (std::size_t k = at; k < at + 4; ++k) {
      const char c = text[k];
      const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (d < 0) return false;
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return true;
  };
  for (++i; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') return out;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (++i >= text.size()) return std::nullopt;
    switch (text[i]) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        std::uint32_t cp = 0;
        if (!hex4(i + 1, cp)) return std::nullopt;
        i += 4;
        std::uint32_t low = 0;
        if (cp >= 0xd800 && cp < 0xdc00 && i + 2 < text.size() && text[i + 1] == '\\' && text[i + 2] == 'u' &&
            hex4(i + 3, low) && low >= 0xdc00 && low < 0xe000) {
          cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          i += 6;
        }
        append_utf8(out, cp);
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// What the splice needs to know of the root object: its top-level keys, the session_id's value, and where it ends.
struct RootObject {
  std::vector<std::string> keys;
  bool session_is_string = false;
  std::string session_id;
  std::size_t close = 0;  // offset of the root's '}'
};

// Not a validator: anything it does not understand is left to the parser, which reports it with a field path.
std::optional<RootObject> scan_root(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && is_space(text[i])) ++i;
  if (i >= text.size() || text[i] != '{') return std::nullopt;
  RootObject root;
  int depth = 0;
  bool want_key = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const bool key = depth == 1 && want_key;
      auto s = read_string(text, i);
      if (!s) return std::nullopt;
      if (key) {
        root.keys.push_back(std::move(*s));
        want_key = false;
        // The value: a string read now (a session_id to compare), anything else by the loop.
        std::size_t j = i + 1;
        while (j < text.size() && (is_space(text[j]) || text[j] == ':')) ++j;
        if (root.keys.back() == "session_id" && j < text.size() && text[j] == '"') {
          auto value = read_string(text, j);
          if (!value) return std::nullopt;
          root.session_is_string = true;
          root.session_id = std::move(*value);
          i = j;
        }
      }
      continue;
    }
    switch (c) {
      case '{':
      case '[':
        ++depth;
        want_key = depth == 1;
        break;
      case '}':
      case ']':
        if (--depth == 0) {
          root.close = i;
          return root;
        }
        break;
      case ',':
        if (depth == 1) want_key = true;
        break;
      default:
        break;
    }
  }
  return std::nullopt;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
}

}  // namespace

base::Result<EncodedEvent> json_to_flatbuffers(std::string_view json, const EnvelopeDefaults& defaults) {
  const auto root = scan_root(json);
  std::string text;
  if (root) {
    auto has = [&](std::string_view key) {
      for (const auto& k : root->keys) {
        if (k == key) return true;
      }
      return false;
    };
    if (has("session_id") && (!root->session_is_string || root->session_id != defaults.session_id)) {
      return base::make_error("session_id: does not match the session in the path (" + defaults.session_id + ")");
    }
    // In the order the API added them.
    std::string added;
    auto field = [&](std::string_view key) -> std::string& {
      if (!added.empty() || !root->keys.empty()) added += ',';
      added += '"';
      added += key;
      added += "\":";
      return added;
    };
    if (!has("session_id")) append_json_string(field("session_id"), defaults.session_id);
    if (!has("event_id")) append_json_string(field("event_id"), defaults.event_id);
    if (defaults.expected_version && !has("expected_version")) {
      field("expected_version") += std::to_string(*defaults.expected_version);
    }
    if (defaults.expected_previous_event_id && !has("expected_previous_event_id")) {
      append_json_string(field("expected_previous_event_id"), *defaults.expected_previous_event_id);
    }
    if (!has("occurred_at_us")) field("occurred_at_us") += std::to_string(defaults.occurred_at_us);
    if (!has("source")) append_json_string(field("source"), defaults.source);
    text.reserve(json.size() + added.size());
    text.append(json.substr(0, root->close));
    text += added;
    text.append(json.substr(root->close));
    json = text;
  }
  auto bytes = json_to_flatbuffers(json);
  if (!bytes) return bytes.error();
  const auto* event_id = schema::GetEvent(bytes->data())->event_id();  // required: verified above
  std::string id(event_id->string_view());
  return EncodedEvent{std::move(bytes).value(), std::move(id)};
}

}  // namespace statefold::codec
