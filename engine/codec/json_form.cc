#include "engine/codec/internal/json_form.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>

#include <boost/json.hpp>
#include <flatbuffers/idl.h>

#include "statefold/schema/events_generated.h"
#include "statefold/schema/schema_text.h"

namespace statefold::codec::internal {

namespace {

namespace fb = flatbuffers;

// Past this size a thread gives back the memory a large record made its buffers grow to.
constexpr std::size_t kKeepBytes = 1 << 20;

fb::IDLOptions parser_options() {
  fb::IDLOptions opts;
  opts.strict_json = true;                     // quoted names, no trailing commas; and strict JSON out
  opts.skip_unexpected_fields_in_json = false;  // an unknown field is an error
  opts.allow_non_utf8 = false;                  // a string that is not UTF-8 is an error
  opts.indent_step = -1;                        // one line out
  opts.natural_utf8 = true;                     // UTF-8 out as is, not \u escapes (see escape_controls)
  opts.output_default_scalars_in_json = true;   // every scalar shows, so readers see role "user", pinned false...
  opts.output_enum_identifiers = true;
  return opts;
}

std::unique_ptr<fb::Parser> make_parser() {
  auto parser = std::make_unique<fb::Parser>(parser_options());
  if (!parser->Parse(schema::kEventsFbs)) {
    throw std::logic_error("codec: the embedded events.fbs does not parse: " + parser->error_);
  }
  return parser;
}

// flatbuffers::Parser cannot be copied (it owns a FlatBufferBuilder) and is not safe to share, so each thread keeps
// its own, built from the schema text once (about 65 us). ParseJson clears the builder and can be called again and
// again, but in 2.0.8 a *failed* parse leaves entries on the parser's private field stack (it grows with every bad
// record), so after a failure the parser is dropped and the next call builds a fresh one.
struct ThreadParser {
  std::unique_ptr<fb::Parser> parser;
  std::string text;  // NUL-terminated copy of the record for the parser

  fb::Parser& get() {
    if (!parser) parser = make_parser();
    return *parser;
  }
};

ThreadParser& thread_parser() {
  thread_local ThreadParser state;
  return state;
}

// Where in the JSON text a parser error happened, as a field path: a scan of the text up to the error's position.
struct Frame {
  bool object;
  std::string path;
  std::string key;  // object: the last key seen
  std::size_t index = 0;  // array: the element being read
};

std::string join(std::string_view path, std::string_view field) {
  std::string out(path);
  if (!out.empty() && !field.empty()) out += '.';
  out += field;
  return out;
}

std::string child_path(const Frame& f) {
  if (f.object) return join(f.path, f.key);
  return f.path + "[" + std::to_string(f.index) + "]";
}

struct Scan {
  std::vector<Frame> stack;
  std::string last_closed;  // path of the object closed last
  std::string prev_closed;  // and of the one closed before it
};

Scan scan(std::string_view text) {
  constexpr std::size_t kMaxDepth = 256;
  Scan s;
  bool want_key = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    switch (c) {
      case '{':
      case '[':
        if (s.stack.size() < kMaxDepth) {
          std::string path = s.stack.empty() ? std::string() : child_path(s.stack.back());
          s.stack.push_back(Frame{c == '{', std::move(path), {}, 0});
        }
        want_key = c == '{';
        break;
      case '}':
      case ']':
        if (!s.stack.empty()) {
          if (s.stack.back().object) {
            s.prev_closed = std::move(s.last_closed);
            s.last_closed = s.stack.back().path;
          }
          s.stack.pop_back();
        }
        want_key = false;
        break;
      case ',':
        if (!s.stack.empty()) {
          if (s.stack.back().object) {
            want_key = true;
          } else {
            ++s.stack.back().index;
          }
        }
        break;
      case ':':
        want_key = false;
        break;
      case '"':
      case '\'': {
        std::size_t j = i + 1;
        std::string str;
        while (j < text.size() && text[j] != c) {
          if (text[j] == '\\' && j + 1 < text.size()) ++j;
          str += text[j++];
        }
        if (want_key && !s.stack.empty() && s.stack.back().object) s.stack.back().key = std::move(str);
        i = j;
        break;
      }
      default:
        break;
    }
  }
  return s;
}

// What FlatBuffers' JSON parser lets through and the JSON form must not: a number or a boolean written as a string
// ("expected_version":"3" was taken as 3). Walks the parsed JSON beside the schema; the first problem, named by its
// field path. (A NUL inside text, \u0000, is text like any other: strings are length-prefixed everywhere, the typed
// builders write it and the JSON form round-trips it; ids, where it is refused, say so in validation.)
class Strictness {
 public:
  std::optional<std::string> check(const boost::json::value& v, const fb::StructDef* def, const std::string& path) {
    if (const auto* a = v.if_array()) {
      for (std::size_t i = 0; i < a->size(); ++i) {
        if (auto p = check((*a)[i], def, path + "[" + std::to_string(i) + "]")) return p;
      }
      return std::nullopt;
    }
    const auto* o = v.if_object();
    if (o == nullptr) return std::nullopt;
    for (const auto& [key, value] : *o) {
      const std::string field_path = join(path, key);
      const fb::FieldDef* field = def == nullptr ? nullptr : def->fields.Lookup(std::string(key));
      if (field == nullptr) continue;  // unknown fields are the parser's to report
      const fb::Type& type = field->value.type;
      if (auto p = scalar(value, type.base_type == fb::BASE_TYPE_VECTOR ? type.element : type.base_type,
                          type.enum_def != nullptr && type.base_type != fb::BASE_TYPE_UNION, field_path)) {
        return p;
      }
      if (auto p = check(value, nested(*o, key, type), field_path)) return p;
    }
    return std::nullopt;
  }

 private:
  // A number or boolean field (or vector of them) given as a string; enum fields take their names as strings.
  static std::optional<std::string> scalar(const boost::json::value& v, fb::BaseType t, bool named_enum,
                                           const std::string& path) {
    if (!fb::IsScalar(t) || t == fb::BASE_TYPE_UTYPE || named_enum) return std::nullopt;
    const auto wrong = [&](const boost::json::value& x) { return x.is_string(); };
    bool bad = wrong(v);
    if (const auto* a = v.if_array()) bad = std::any_of(a->begin(), a->end(), wrong);
    if (!bad) return std::nullopt;
    return path + (fb::IsBool(t) ? ": must be true or false, not a string" : ": must be a number, not a string");
  }

  // The table a nested object of `key` is read as: its struct, or the union member its _type sibling names.
  static const fb::StructDef* nested(const boost::json::object& parent, boost::json::string_view key,
                                     const fb::Type& type) {
    if (type.struct_def != nullptr) return type.struct_def;
    if (type.base_type != fb::BASE_TYPE_UNION || type.enum_def == nullptr) return nullptr;
    const auto* tag = parent.if_contains(std::string(key) + "_type");
    if (tag == nullptr || !tag->is_string()) return nullptr;
    const fb::EnumVal* member = type.enum_def->Lookup(std::string(tag->as_string()));
    return member == nullptr ? nullptr : member->union_type.struct_def;
  }
};

// With natural_utf8, GenerateText (2.0.8) writes control characters other than \b \t \n \f \r into strings raw,
// which is not JSON. On one line (indent_step -1) every byte below 0x20 is inside a string, so escape them all.
std::string escape_controls(std::string text) {
  auto is_control = [](char c) { return static_cast<unsigned char>(c) < 0x20; };
  if (std::none_of(text.begin(), text.end(), is_control)) return text;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() + 16);
  for (char c : text) {
    if (is_control(c)) {
      const auto u = static_cast<unsigned char>(c);
      out += "\\u00";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix, std::string_view& rest) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  rest = s.substr(prefix.size());
  return true;
}

}  // namespace

std::string json_error_message(std::string_view text, std::string_view parser_error) {
  // The parser reports "<line>: <column>: error: <message>", column counted from 0 at the start of the line, at the
  // parser's cursor (just after the token it stopped at).
  std::size_t line = 0, column = 0, pos = 0;
  auto number = [&](std::size_t& out) {
    std::size_t start = pos;
    while (pos < parser_error.size() && parser_error[pos] >= '0' && parser_error[pos] <= '9') {
      out = out * 10 + static_cast<std::size_t>(parser_error[pos++] - '0');
    }
    return pos > start;
  };
  std::string_view message = parser_error;
  if (number(line) && parser_error.substr(pos, 2) == ": " && (pos += 2, number(column))) {
    std::string_view rest = parser_error.substr(pos);
    if (starts_with(rest, ": error: ", rest) || starts_with(rest, ": ", rest)) message = rest;
  } else {
    line = 0;
  }
  if (line == 0) return "json: " + std::string(message);

  std::size_t offset = 0;
  for (std::size_t l = 1; l < line && offset != std::string_view::npos; ++l) {
    offset = text.find('\n', offset);
    if (offset != std::string_view::npos) ++offset;
  }
  if (offset == std::string_view::npos) offset = text.size();
  offset = std::min(text.size(), offset + column);
  const std::string at = " (at " + std::to_string(line) + ":" + std::to_string(column) + ")";

  const Scan s = scan(text.substr(0, offset));
  std::string_view field;
  if (starts_with(message, "required field is missing: ", field)) {
    // "<field> in <Table>". The parser checks a table's required fields after its '}' and one more token: the
    // end of the text for the root, else ',' or ']' (the table is the object closed last) or '}' (the parent closed
    // after it). A '}' at the very end of a text whose root is still open is the table's own, read before the end.
    const std::size_t in = field.find(" in ");
    const std::string_view table = in == std::string_view::npos ? std::string_view() : field.substr(in + 4);
    field = field.substr(0, in);
    std::string base;
    if (table != "Event") {
      const auto last = text.substr(0, offset).find_last_not_of(" \t\r\n");
      const bool parent_closed =
          last != std::string_view::npos && text[last] == '}' && (s.stack.empty() || offset < text.size());
      base = parent_closed ? s.prev_closed : s.last_closed;
    }
    return join(base, field) + ": required field is missing" + at;
  }
  const bool unknown = starts_with(message, "unknown field: ", field);
  if (unknown || starts_with(message, "field set more than once: ", field)) {
    // The object whose key this is: the parser may already have stepped into the field's value.
    std::string base = s.stack.empty() ? std::string() : s.stack.back().path;
    for (auto it = s.stack.rbegin(); it != s.stack.rend(); ++it) {
      if (it->object && it->key == field) {
        base = it->path;
        break;
      }
    }
    return join(base, field) + (unknown ? ": unknown field" : ": set more than once") + at;
  }
  // Only an object can be an event: anything else gets no path.
  std::string path = s.stack.empty() || !s.stack.front().object ? std::string() : child_path(s.stack.back());
  return (path.empty() ? std::string("json") : path) + ": " + std::string(message) + at;
}

base::Result<std::vector<std::uint8_t>> parse_json(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return base::make_error("json: empty record");
  // The parser reads a C string: a NUL would end the text early and the rest would go unread.
  if (auto nul = text.find('\0'); nul != std::string_view::npos) {
    return base::make_error("json: NUL byte at offset " + std::to_string(nul));
  }
  ThreadParser& state = thread_parser();
  {
    boost::json::error_code ec;
    const boost::json::value strict = boost::json::parse(text, ec);
    if (!ec) {  // what does not parse here, the parser below reports with its position
      if (auto problem = Strictness().check(strict, state.get().root_struct_def_, "")) {
        return base::make_error(std::move(*problem));
      }
    }
  }
  state.text.assign(text);
  fb::Parser& parser = state.get();
  const bool ok = parser.ParseJson(state.text.c_str());
  if (!ok) {
    std::string message = json_error_message(text, parser.error_);
    state.parser.reset();
    if (state.text.capacity() > kKeepBytes) std::string().swap(state.text);
    return base::make_error(std::move(message));
  }
  const std::uint8_t* data = parser.builder_.GetBufferPointer();
  std::vector<std::uint8_t> bytes(data, data + parser.builder_.GetSize());
  if (bytes.size() > kKeepBytes) parser.builder_.Reset();
  if (state.text.capacity() > kKeepBytes) std::string().swap(state.text);
  return bytes;
}

std::string render_json(std::span<const std::uint8_t> canonical, bool payload_known) {
  const std::uint8_t* buffer = canonical.data();
  std::vector<std::uint8_t> copy;
  // Scalars are read in place: the buffer must be aligned as the builder aligned it (8 for the uint64 fields).
  if (!payload_known || reinterpret_cast<std::uintptr_t>(buffer) % 8 != 0) {
    copy.assign(canonical.begin(), canonical.end());
    buffer = copy.data();
  }
  if (!payload_known) {
    // GenerateText cannot print a union member the schema does not name (it fails half way). Hide the payload from
    // it by zeroing the payload's slot in the copy's root vtable: the field then reads as absent, and payload_type
    // prints as its number.
    using namespace flatbuffers;
    auto* root = copy.data() + ReadScalar<uoffset_t>(copy.data());
    auto* vtable = root - ReadScalar<soffset_t>(root);
    if (ReadScalar<voffset_t>(vtable) >= schema::Event::VT_PAYLOAD + sizeof(voffset_t)) {
      WriteScalar<voffset_t>(vtable + schema::Event::VT_PAYLOAD, 0);
    }
  }
  std::string out;
  if (!fb::GenerateText(thread_parser().get(), buffer, &out)) {
    throw std::logic_error("codec: a verified event has no JSON form (a string that is not UTF-8?)");
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return escape_controls(std::move(out));
}

}  // namespace statefold::codec::internal
