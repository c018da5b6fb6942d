// workload: the generator behind workload.h. One pass, one reusable line buffer, one xoshiro256** stream seeded
// from Options::seed, so the bytes depend on nothing but the options (no std:: distributions, no clocks).
#include "engine/workload/workload.h"

#include "engine/base/json_writer.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace statefold::workload {
namespace {

constexpr std::int64_t kBaseTimeUs = 1767225600000000;  // 2026-01-01T00:00:00Z
constexpr double kExpectedVersionShare = 0.2;           // normal lines that carry the (correct) expected_version
constexpr std::size_t kMaxRing = 4096;                  // most lines kept as duplicate sources

// ---------------------------------------------------------------------------------------------------------------
// Randomness: splitmix64 to seed, xoshiro256** to draw. Integer draws use the high half of a 128-bit product and
// real draws the top 53 bits, both exactly specified, so output is identical on every platform.

constexpr std::uint64_t splitmix_mix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);  // a bijection of 64-bit words
}

__extension__ typedef unsigned __int128 u128;  // GCC/Clang; __extension__ keeps -Wpedantic quiet

class Rng {
 public:
  explicit Rng(std::uint64_t seed) {
    for (auto& word : _s) {
      seed += 0x9e3779b97f4a7c15ULL;
      word = splitmix_mix(seed);
    }
  }
  std::uint64_t next() {
    const std::uint64_t result = rotl(_s[1] * 5, 7) * 9;
    const std::uint64_t t = _s[1] << 17;
    _s[2] ^= _s[0];
    _s[3] ^= _s[1];
    _s[1] ^= _s[2];
    _s[0] ^= _s[3];
    _s[2] ^= t;
    _s[3] = rotl(_s[3], 45);
    return result;
  }
  // Uniform in [0, n); n > 0.
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<u128>(next()) * n) >> 64);
  }
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }  // inclusive
  double real() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return real() < p; }
  template <typename T, std::size_t N>
  const T& pick(const std::array<T, N>& items) {
    return items[below(N)];
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::array<std::uint64_t, 4> _s{};
};

// ---------------------------------------------------------------------------------------------------------------
// JSON output.

constexpr char kHex[] = "0123456789abcdef";

void append_u64(std::string& out, std::uint64_t value) { base::json::num(out, value); }

void append_i64(std::string& out, std::int64_t value) { base::json::inum(out, value); }

void append_hex64(std::string& out, std::uint64_t value, int digits = 16) {
  for (int shift = (digits - 1) * 4; shift >= 0; shift -= 4) out += kHex[(value >> shift) & 0xf];
}

// `,"key":` (or without the comma for the first field of an object).
void key(std::string& out, std::string_view name, bool first = false) {
  if (!first) out += ',';
  base::json::key(out, name);
}

void field_str(std::string& out, std::string_view name, std::string_view value, bool first = false) {
  key(out, name, first);
  base::append_json_string(out, value);
}

void field_u64(std::string& out, std::string_view name, std::uint64_t value, bool first = false) {
  key(out, name, first);
  append_u64(out, value);
}

// ---------------------------------------------------------------------------------------------------------------
// Vocabulary. Plain literals are UTF-8 (the project builds with GCC/Clang defaults).

constexpr auto kWords = std::to_array<std::string_view>({
    "the", "a", "state", "session", "event", "version", "model", "context", "token", "budget", "cache", "prompt",
    "reply", "tool", "call", "result", "memory", "summary", "receipt", "latency", "error", "retry", "stream",
    "partition", "offset", "broker", "consumer", "replay", "snapshot", "audit", "hash", "chain", "fold", "store",
    "write", "batch", "order", "window", "policy", "provider", "endpoint", "request", "response", "user",
    "assistant", "system", "message", "content", "deploy", "cluster", "node", "disk", "network", "queue", "table",
    "index", "query", "schema", "field", "value", "label", "config", "file", "path", "build", "test", "bench",
    "metric", "log", "trace", "alert", "incident", "customer", "invoice", "order", "shipment", "refund", "account",
    "password", "email", "meeting", "calendar", "weather", "trip", "flight", "hotel", "recipe", "garden", "music",
    "book", "chapter", "draft", "review", "report", "plan", "goal", "deadline", "team", "project", "budget",
    "is", "are", "was", "will", "can", "should", "could", "would", "might", "must", "have", "has", "need",
    "want", "check", "explain", "compare", "fix", "update", "delete", "create", "read", "send", "find", "show",
    "and", "or", "but", "so", "because", "when", "if", "then", "with", "without", "for", "from", "into", "about",
    "after", "before", "again", "still", "already", "quickly", "slowly", "carefully", "really", "maybe", "please",
    "this", "that", "my", "your", "our", "their", "new", "old", "large", "small", "first", "last"});

// Non-ASCII words and phrases: accents, CJK, Hangul, Cyrillic, Arabic, emoji (including ZWJ and skin tones).
constexpr auto kIntl = std::to_array<std::string_view>({
    "café", "naïve", "déjà vu", "Zürich", "São Paulo", "façade", "crème brûlée", "Kraków", "Reykjavík", "über",
    "señor", "jalapeño", "你好", "世界", "东京的天气怎么样", "日本語のテキスト", "ありがとう", "한국어", "안녕하세요",
    "Привет", "спасибо", "مرحبا", "🙂", "🚀", "👍🏽", "🎉", "❤️", "👩‍💻", "🇫🇷", "≈ 3.14 ± 0.01", "€42,50", "naïveté"});

constexpr auto kTails = std::to_array<std::string_view>({
    " Merci beaucoup ! 🙏", " 谢谢！", " ありがとうございます。", " Danke schön 😊", " ¿Tiene sentido?",
    " Спасибо!", " 👍", " (see “the docs”)", " — thanks!", " 🚀🚀", " Grüße aus Zürich.", " 좋아요 👌"});

constexpr auto kCode = std::to_array<std::string_view>({
    "```cpp\nint main() {\n  std::cout << \"hello, world\\n\";\n  return 0;\n}\n```",
    "```python\nprint(\"total:\", sum(x[\"n\"] for x in rows))\n```",
    "```json\n{\"retries\": 3, \"path\": \"C:\\\\tmp\\\\log.txt\"}\n```",
    "```sh\ngrep -rn \"TODO\" src/ | wc -l\n```",
    "Here is the stack trace:\n\tat Foo.bar(Foo.java:42)\n\tat Main.main(Main.java:7)",
    "```sql\nSELECT name, \"count\" FROM events WHERE session = 'a\\'b' ORDER BY 2 DESC;\n```"});

constexpr auto kSystemPrompts = std::to_array<std::string_view>({
    "You are a helpful assistant. Answer concisely and cite sources when you can.",
    "You are a senior support engineer. Be precise; ask for logs when a problem is unclear.",
    "You are a coding assistant. Prefer small, tested changes. Use tools when they help.",
    "Tu es un assistant qui répond en français, de façon claire et polie.",
    "あなたは親切なアシスタントです。簡潔に答えてください。",
    "You are a travel planner. Keep \"must-see\" lists short and mention prices in local currency."});

struct Provider {
  std::string_view name;
  std::string_view endpoint;
  std::array<std::string_view, 2> models;
};
constexpr std::array<Provider, 3> kProviders = {{
    {"openai", "https://api.openai.com/v1/chat/completions", {"gpt-4o-mini", "gpt-4.1"}},
    {"anthropic", "https://api.anthropic.com/v1/messages", {"claude-sonnet-4-5", "claude-haiku-4-5"}},
    {"echo", "echo://local", {"echo-1", "echo-1"}},
}};

constexpr auto kLabels = std::to_array<std::string_view>({
    "user_name", "preferred_language", "timezone", "project", "goal", "deadline", "constraints", "tone",
    "location", "team", "stack", "budget", "favorite_food", "pet_name", "os", "editor"});
constexpr std::array<std::array<std::string_view, 3>, 16> kLabelValues = {{
    {"Ada", "José", "Zoë"},
    {"English", "français", "日本語"},
    {"Europe/Paris", "Asia/Tokyo", "America/New_York"},
    {"statefold", "billing migration", "garden planner"},
    {"ship v1 by March", "learn Rust", "run a marathon"},
    {"2026-03-31", "next Friday", "end of quarter"},
    {"no cloud services", "must run offline", "budget under €500"},
    {"formal", "casual 🙂", "terse"},
    {"Zürich", "São Paulo", "東京"},
    {"platform", "data", "support"},
    {"C++20, RocksDB, Kafka", "Python, Postgres", "Go, Redis"},
    {"$2,000/month", "€500", "¥30000"},
    {"crème brûlée", "ramen 🍜", "tacos al pastor"},
    {"Biscuit", "Mochi", "Пушок"},
    {"Debian 12", "macOS 15", "Windows 11"},
    {"vim", "VS Code", "Emacs"},
}};

constexpr auto kTools = std::to_array<std::string_view>({"get_weather", "search_docs", "run_sql",
                                                    "read_file",   "run_shell",   "calculator"});
constexpr auto kCities = std::to_array<std::string_view>({"Zürich", "São Paulo", "東京",      "Kraków",
                                                     "Reykjavík", "New York", "Montréal", "Москва"});

constexpr auto kCloseReasons = std::to_array<std::string_view>({"user ended the conversation", "idle timeout",
                                                           "task completed", "moved to a new session"});

static_assert(kLabels.size() == 16, "Session::memory is a 16-bit mask");
static_assert(!kLabelValues.back()[2].empty(), "one value list per label");
static_assert(kTools.size() == 6, "tool_arguments and tool_output handle six tools");

enum class Payload : std::uint8_t {
  session_opened,
  message,
  memory_set,
  memory_delete,
  summary,
  inference_receipt,
  session_closed,
  custom,
  count
};
constexpr std::array<std::string_view, static_cast<std::size_t>(Payload::count)> kPayloadNames = {
    "SessionOpened", "Message", "MemorySet", "MemoryDelete", "Summary", "InferenceReceipt", "SessionClosed",
    "Custom"};

static_assert(!kPayloadNames.back().empty(), "one name per payload type");

using IdText = std::array<char, 32>;

enum class Phase : std::uint8_t { idle, awaiting_reply, tool_results, receipt };

struct Session {
  std::uint64_t version = 0;          // events accepted so far, tracked as the engine will
  std::uint64_t context_tokens = 0;   // rough size of the conversation, for receipt usage
  std::uint64_t last_input_tokens = 0;
  std::uint64_t receipt_state_version = 0;
  std::uint64_t last_summary_version = 0;
  std::uint64_t tool_block_line = 0;  // line of the assistant message whose tool calls are being answered
  std::uint32_t reply_tokens = 0;
  std::uint32_t active_pos = 0;
  std::uint32_t tool_pos = 0;
  std::uint16_t memory = 0;           // bit i: kLabels[i] is set in the accepted state
  std::uint8_t provider = 0;
  std::uint8_t model = 0;
  std::uint8_t tool_total = 0;
  std::uint8_t tool_next = 0;
  std::uint8_t tool_depth = 0;
  std::array<std::uint8_t, 3> tools{};
  Phase phase = Phase::idle;
  bool closed = false;
  IdText turn_id{};   // the user message that started the current turn
  IdText cause_id{};  // the assistant message awaiting its tool results or its receipt
};

struct RingEntry {
  std::uint64_t line = 0;
  std::uint32_t session = 0;
  std::string text;
};

class Generator {
 public:
  Generator(const Options& options, const std::function<void(std::string_view)>& sink)
      : _o(options), _sink(sink), _rng(options.seed) {
    _id_hi = splitmix_mix(options.seed ^ 0x5354415445464f4cULL);  // "STATEFOL"
    _id_key = splitmix_mix(options.seed + 0x9e3779b97f4a7c15ULL);
    _call_key = splitmix_mix(options.seed ^ 0x63616c6c5f696473ULL);
    _to_open = std::min(options.sessions, options.events);
    _sessions.reserve(static_cast<std::size_t>(_to_open));
    _max_closes = _to_open / 10 + (_to_open >= 3 ? 1 : 0);
    _ring.resize(static_cast<std::size_t>(std::min<std::uint64_t>(options.duplicate_lookback, kMaxRing)));
    _width = static_cast<int>(std::max<std::size_t>(6, std::to_string(options.sessions).size()));
    _line.reserve(8192);
  }

  Stats run() {
    const std::uint64_t total = _o.events;
    const std::uint64_t closing_from = total - total / 10;
    std::uint64_t pending_dups = 0;
    std::uint64_t pending_stale = 0;
    for (_i = 0; _i < total; ++_i) {
      const std::uint64_t left = total - _i;  // including this line
      _now += static_cast<std::int64_t>(_rng.between(1000, 250000));
      // A fault drawn when none can be placed waits for the next line that can take it; the cap keeps the
      // backlog from turning into a burst.
      if (_rng.chance(_o.duplicate_rate)) pending_dups = std::min<std::uint64_t>(pending_dups + 1, 16);
      if (_rng.chance(_o.stale_rate)) pending_stale = std::min<std::uint64_t>(pending_stale + 1, 16);
      const std::uint64_t unopened = _to_open - _sessions.size();
      // Invariant: unopened + pending tool results <= lines left, so every session opens and no tool call is
      // left without its results when the stream ends.
      if (unopened + _pending_tool_lines >= left) {
        if (unopened > 0) {
          open_session();
        } else {
          step(_sessions[_in_tool_block.back()]);
        }
        continue;
      }
      if (unopened > 0 &&
          (_active.empty() || _rng.chance(2.0 * static_cast<double>(unopened) / static_cast<double>(left)))) {
        open_session();
        continue;
      }
      if (pending_dups > 0 && try_duplicate()) {
        --pending_dups;
        continue;
      }
      if (pending_stale > 0 && try_stale()) {
        --pending_stale;
        continue;
      }
      Session& s = pick_active();
      if (_i >= closing_from && s.phase == Phase::idle && _closes < _max_closes && _active.size() > 2 &&
          _rng.chance(0.05)) {
        close_session(s);
        continue;
      }
      step(s);
    }
    _stats.lines = total;
    _stats.sessions_opened = _sessions.size();
    _stats.final_versions.reserve(_sessions.size());
    for (const Session& s : _sessions) _stats.final_versions.push_back(s.version);
    for (std::size_t k = 0; k < _by_type.size(); ++k) {
      if (_by_type[k] > 0) _stats.accepted_by_type.emplace(std::string(kPayloadNames[k]), _by_type[k]);
    }
    return std::move(_stats);
  }

 private:
  // ----- selection -------------------------------------------------------------------------------------------

  std::uint32_t index_of(const Session& s) const { return static_cast<std::uint32_t>(&s - _sessions.data()); }

  // Skewed: half the picks are uniform, half favour the oldest sessions (a few hot conversations).
  Session& pick_active() {
    const std::size_t n = _active.size();
    std::size_t k;
    if (_rng.chance(0.5)) {
      k = static_cast<std::size_t>(_rng.below(n));
    } else {
      const double u = _rng.real();
      k = std::min(n - 1, static_cast<std::size_t>(u * u * u * static_cast<double>(n)));
    }
    return _sessions[_active[k]];
  }

  void set_remove(std::vector<std::uint32_t>& set, std::uint32_t Session::*pos, Session& s) {
    const std::uint32_t at = s.*pos;
    set[at] = set.back();
    _sessions[set[at]].*pos = at;
    set.pop_back();
  }

  // ----- envelope ----------------------------------------------------------------------------------------------

  IdText event_id(std::uint64_t line) const {
    IdText id;
    const std::uint64_t lo = splitmix_mix(line + _id_key);  // bijective in `line`: ids never repeat in a run
    const std::uint64_t hi = splitmix_mix(lo ^ _id_hi);
    for (int k = 0; k < 16; ++k) {
      id[static_cast<std::size_t>(k)] = kHex[(hi >> (60 - 4 * k)) & 0xf];
      id[static_cast<std::size_t>(16 + k)] = kHex[(lo >> (60 - 4 * k)) & 0xf];
    }
    return id;
  }

  void append_session_id(std::uint32_t index) {
    _scratch_id.assign(_o.session_prefix);
    const std::string number = std::to_string(static_cast<std::uint64_t>(index) + 1);
    if (number.size() < static_cast<std::size_t>(_width)) _scratch_id.append(_width - number.size(), '0');
    _scratch_id += number;
    base::append_json_string(_line, _scratch_id);
  }

  // Starts `_line` with the envelope of a new event of session `s` up to the opening brace of its payload.
  void begin(const Session& s, Payload type, const std::uint64_t* expected_version, const IdText* correlation,
             const IdText* causation) {
    _line.clear();
    _id = event_id(_i);
    _line += "{\"event_id\":\"";
    _line.append(_id.data(), _id.size());
    _line += "\",\"session_id\":";
    append_session_id(index_of(s));
    if (expected_version != nullptr) field_u64(_line, "expected_version", *expected_version);
    key(_line, "occurred_at_us");
    append_i64(_line, kBaseTimeUs + _now);
    field_str(_line, "source", _o.source);
    if (correlation != nullptr) {
      _line += ",\"correlation_id\":\"";
      _line.append(correlation->data(), correlation->size());
      _line += '"';
    }
    if (causation != nullptr) {
      _line += ",\"causation_id\":\"";
      _line.append(causation->data(), causation->size());
      _line += '"';
    }
    _line += ",\"payload_type\":\"";
    _line += kPayloadNames[static_cast<std::size_t>(type)];
    _line += "\",\"payload\":{";
  }

  // Begins a normal (accepted) event; a share of them carries the correct expected_version.
  void begin_accepted(Session& s, Payload type, const IdText* correlation = nullptr,
                      const IdText* causation = nullptr) {
    _type = type;
    _with_expected = _rng.chance(kExpectedVersionShare);
    begin(s, type, _with_expected ? &s.version : nullptr, correlation, causation);
  }

  // Closes the line of an accepted event, tracks the version as the engine will, and hands it to the sink.
  void finish_accepted(Session& s) {
    _line += "}}";
    ++s.version;
    ++_stats.accepted;
    ++_by_type[static_cast<std::size_t>(_type)];
    if (_with_expected) {
      ++_stats.expected_version_ok;
    } else if (!_ring.empty()) {
      // Only lines without an expected_version are re-sent, so a duplicate is one whatever order the engine
      // checks ids and versions in.
      RingEntry& slot = _ring[_ring_next];
      slot.line = _i;
      slot.session = index_of(s);
      slot.text.assign(_line);
      _ring_next = (_ring_next + 1) % _ring.size();
      _ring_count = std::min(_ring_count + 1, _ring.size());
    }
    _sink(_line);
  }

  // ----- text --------------------------------------------------------------------------------------------------

  void sentence(std::string& out, std::uint64_t min_words, std::uint64_t max_words) {
    const std::uint64_t n = _rng.between(min_words, max_words);
    for (std::uint64_t w = 0; w < n; ++w) {
      if (w > 0) out += (_rng.chance(0.06) ? ", " : " ");
      const std::size_t at = out.size();
      out += _rng.chance(0.03) ? _rng.pick(kIntl) : _rng.pick(kWords);
      if (w == 0 && out[at] >= 'a' && out[at] <= 'z') out[at] = static_cast<char>(out[at] - 'a' + 'A');
    }
    const std::uint64_t end = _rng.below(10);
    out += end < 7 ? "." : end < 9 ? "?" : "!";
  }

  void paragraph(std::string& out, std::uint64_t min_sentences, std::uint64_t max_sentences) {
    const std::uint64_t n = _rng.between(min_sentences, max_sentences);
    for (std::uint64_t k = 0; k < n; ++k) {
      if (k > 0) out += ' ';
      sentence(out, 4, 18);
    }
  }

  // A few words to a few paragraphs; sometimes code with quotes and backslashes, sometimes non-ASCII.
  void user_text(std::string& out) {
    out.clear();
    const std::uint64_t kind = _rng.below(100);
    if (kind < 35) {
      sentence(out, 2, 8);
    } else if (kind < 75) {
      paragraph(out, 1, 3);
    } else if (kind < 94) {
      const std::uint64_t paragraphs = _rng.between(2, 4);
      for (std::uint64_t p = 0; p < paragraphs; ++p) {
        if (p > 0) out += "\n\n";
        paragraph(out, 2, 5);
      }
    } else {
      sentence(out, 3, 10);
      out += "\n\n";
      out += _rng.pick(kCode);
    }
    if (_rng.chance(0.12)) out += _rng.pick(kTails);
  }

  void assistant_text(std::string& out) {
    out.clear();
    const std::uint64_t paragraphs = _rng.between(1, 3);
    for (std::uint64_t p = 0; p < paragraphs; ++p) {
      if (p > 0) out += "\n\n";
      paragraph(out, 1, 4);
    }
    if (_rng.chance(0.1)) {
      out += "\n\n- ";
      sentence(out, 3, 8);
      out += "\n- ";
      sentence(out, 3, 8);
    }
    if (_rng.chance(0.06)) {
      out += "\n\n";
      out += _rng.pick(kCode);
    }
  }

  void content_part(std::string_view text, std::string_view kind = {}, std::string_view media_type = {},
                    bool first = true) {
    if (!first) _line += ',';
    _line += '{';
    bool first_field = true;
    if (!kind.empty()) {
      field_str(_line, "kind", kind, true);
      first_field = false;
    }
    field_str(_line, "text", text, first_field);
    if (!media_type.empty()) field_str(_line, "media_type", media_type);
    _line += '}';
  }

  static std::uint64_t tokens_of(std::string_view text) { return text.size() / 4 + 1; }

  // ----- events ------------------------------------------------------------------------------------------------

  void open_session() {
    _sessions.emplace_back();
    Session& s = _sessions.back();
    const auto index = static_cast<std::uint32_t>(_sessions.size() - 1);
    s.active_pos = static_cast<std::uint32_t>(_active.size());
    _active.push_back(index);
    s.provider = static_cast<std::uint8_t>(_rng.below(kProviders.size()));
    s.model = static_cast<std::uint8_t>(_rng.below(2));
    const Provider& p = kProviders[s.provider];

    // No expected_version here: 0 ("must not exist yet") is a corner case better tested on its own.
    _type = Payload::session_opened;
    _with_expected = false;
    begin(s, Payload::session_opened, nullptr, nullptr, nullptr);
    field_str(_line, "model", p.models[s.model], true);
    const std::string_view prompt = _rng.pick(kSystemPrompts);
    field_str(_line, "system_prompt", prompt);
    s.context_tokens = tokens_of(prompt);
    static constexpr std::array<std::uint64_t, 4> kBudgets = {8000, 32000, 128000, 200000};
    static constexpr std::array<std::uint64_t, 3> kReserves = {1024, 4096, 8192};
    key(_line, "policy");
    _line += '{';
    field_u64(_line, "token_budget", _rng.pick(kBudgets), true);
    field_u64(_line, "output_reserve", _rng.pick(kReserves));
    field_str(_line, "tokenizer", _rng.chance(0.7) ? "o200k_base" : "cl100k_base");
    field_str(_line, "provider", p.name);
    _line += '}';
    key(_line, "metadata");
    _line += '[';
    _line += "{\"key\":\"tenant\",\"value\":\"acme-";
    append_u64(_line, _rng.below(50));
    _line += "\"},{\"key\":\"channel\",\"value\":\"";
    static constexpr auto kChannels = std::to_array<std::string_view>({"web", "api", "slack", "mobile"});
    _line += _rng.pick(kChannels);
    _line += "\"}";
    if (_rng.chance(0.4)) {
      static constexpr auto kLocales = std::to_array<std::string_view>({"fr-FR", "ja-JP", "de-CH", "pt-BR", "en-US"});
      _line += ",{\"key\":\"locale\",\"value\":\"";
      _line += _rng.pick(kLocales);
      _line += "\"}";
    }
    _line += ']';
    finish_accepted(s);
  }

  void step(Session& s) {
    switch (s.phase) {
      case Phase::tool_results: tool_result(s); return;
      case Phase::receipt: receipt(s, 200); return;
      case Phase::awaiting_reply:
        if (_rng.chance(0.03)) {
          receipt(s, _rng.chance(0.6) ? 429 : 500);  // a failed call; the retry comes later
        } else {
          assistant_message(s);
        }
        return;
      case Phase::idle: break;
    }
    const std::uint64_t roll = _rng.below(1000);
    if (roll < 760) {
      user_message(s);
    } else if (roll < 860) {
      memory_set(s);
    } else if (roll < 920 && s.memory != 0) {
      memory_delete(s);
    } else if (roll < 960 && s.version >= s.last_summary_version + 8) {
      summary(s);
    } else if (roll < 975) {
      custom(s);
    } else if (roll < 985) {
      developer_message(s);
    } else {
      user_message(s);
    }
  }

  void user_message(Session& s) {
    begin_accepted(s, Payload::message);
    s.turn_id = _id;
    _line += "\"role\":\"user\",\"content\":[";
    user_text(_text);
    content_part(_text);
    if (_rng.chance(0.03)) {
      _scratch.assign("https://example.com/uploads/");
      append_hex64(_scratch, _rng.next(), 12);
      _scratch += ".png";
      content_part(_scratch, "image_url", "image/png", false);
    }
    _line += ']';
    s.context_tokens += tokens_of(_text);
    s.phase = Phase::awaiting_reply;
    s.tool_depth = 0;
    finish_accepted(s);
  }

  void developer_message(Session& s) {
    static constexpr auto kNotes = std::to_array<std::string_view>({
        "Keep answers under 200 words.", "The user is on a mobile device; avoid wide tables.",
        "Réponds dans la langue de l’utilisateur."});
    begin_accepted(s, Payload::message);
    _line += "\"role\":\"developer\",\"content\":[";
    const std::string_view note = _rng.pick(kNotes);
    content_part(note);
    _line += ']';
    s.context_tokens += tokens_of(note);
    finish_accepted(s);
  }

  void tool_arguments(std::string& out, std::uint8_t tool) {
    out.clear();
    switch (tool) {
      case 0:
        out += "{\"city\":";
        base::append_json_string(out, _rng.pick(kCities));
        out += ",\"unit\":\"celsius\"}";
        break;
      case 1:
        out += "{\"query\":";
        _scratch.clear();
        sentence(_scratch, 2, 6);
        base::append_json_string(out, _scratch);
        out += ",\"top_k\":";
        append_u64(out, _rng.between(3, 10));
        out += '}';
        break;
      case 2:
        out += "{\"sql\":";
        base::append_json_string(out, "SELECT name, \"count\" FROM events WHERE owner = 'O''Brien' LIMIT 10");
        out += '}';
        break;
      case 3:
        out += "{\"path\":";
        base::append_json_string(out, _rng.chance(0.5) ? "C:\\Users\\ada\\notes – draft.txt" : "/home/ada/notes.md");
        out += '}';
        break;
      case 4:
        out += "{\"command\":";
        base::append_json_string(out, "grep -rn \"TODO\" src/ | head -n 5");
        out += ",\"timeout_s\":30}";
        break;
      default:
        out += "{\"expression\":\"(";
        append_u64(out, _rng.below(1000));
        out += " + ";
        append_u64(out, _rng.below(1000));
        out += ") * 2\"}";
    }
  }

  void tool_output(std::string& out, std::uint8_t tool) {
    out.clear();
    switch (tool) {
      case 0:
        out += "{\"temperature_c\":";
        append_u64(out, _rng.below(35));
        out += ".5,\"conditions\":\"partly cloudy\",\"humidity\":0.";
        append_u64(out, _rng.between(10, 99));
        out += '}';
        break;
      case 1:
        out += "[{\"title\":";
        _scratch.clear();
        sentence(_scratch, 3, 7);
        base::append_json_string(out, _scratch);
        out += ",\"url\":\"https://docs.example.com/p/";
        append_u64(out, _rng.below(100000));
        out += "\",\"score\":0.9}]";
        break;
      case 2:
        out += "{\"columns\":[\"name\",\"count\"],\"rows\":[[\"Zoë\",";
        append_u64(out, _rng.below(500));
        out += "],[\"O'Brien\",";
        append_u64(out, _rng.below(500));
        out += "]]}";
        break;
      case 3:
        paragraph(out, 2, 6);
        out += "\n";
        break;
      case 4:  // terminal output, with ANSI colours (control characters in a JSON string)
        out += "src/fold.cc:42:  // TODO: \x1b[31mhandle\x1b[0m unknown payloads\nsrc/store.cc:7:  // TODO: compact\n";
        break;
      default:
        append_u64(out, _rng.below(4000));
    }
  }

  void assistant_message(Session& s) {
    const std::uint64_t left_after = _o.events - _i - 1;
    const std::uint64_t unopened = _to_open - _sessions.size();
    const auto calls = static_cast<std::uint8_t>(_rng.between(1, 3));
    const bool with_tools = s.tool_depth < 2 && _rng.chance(0.3) &&
                            unopened + _pending_tool_lines + calls <= left_after;
    begin_accepted(s, Payload::message, &s.turn_id);
    _line += "\"role\":\"assistant\",\"content\":[";
    if (with_tools) {
      if (_rng.chance(0.5)) {
        static constexpr auto kPreludes = std::to_array<std::string_view>({
            "Let me check that.", "I'll look that up.", "Un instant, je vérifie."});
        content_part(_rng.pick(kPreludes));
      }
      _line += "],\"tool_calls\":[";
      s.tool_total = calls;
      s.tool_next = 0;
      s.tool_block_line = _i;
      for (std::uint8_t k = 0; k < calls; ++k) {
        s.tools[k] = static_cast<std::uint8_t>(_rng.below(kTools.size()));
        if (k > 0) _line += ',';
        _line += "{\"id\":\"";
        append_call_id(s.tool_block_line, k);
        _line += "\",\"name\":\"";
        _line += kTools[s.tools[k]];
        _line += "\",\"arguments\":";
        tool_arguments(_text, s.tools[k]);
        base::append_json_string(_line, _text);
        _line += '}';
        s.context_tokens += tokens_of(_text);
      }
      _line += ']';
      s.cause_id = _id;
      s.phase = Phase::tool_results;
      s.tool_pos = static_cast<std::uint32_t>(_in_tool_block.size());
      _in_tool_block.push_back(index_of(s));
      _pending_tool_lines += calls;
    } else {
      assistant_text(_text);
      content_part(_text);
      _line += ']';
      s.reply_tokens = static_cast<std::uint32_t>(tokens_of(_text));
      s.context_tokens += s.reply_tokens;
      s.receipt_state_version = s.version;  // the state the reply was rendered from
      s.cause_id = _id;
      s.phase = Phase::receipt;
    }
    finish_accepted(s);
  }

  void append_call_id(std::uint64_t line, std::uint8_t k) {
    _line += "call_";
    append_hex64(_line, splitmix_mix(line * 4 + k + _call_key), 16);
  }

  void tool_result(Session& s) {
    const std::uint8_t k = s.tool_next;
    begin_accepted(s, Payload::message, &s.turn_id, &s.cause_id);
    _line += "\"role\":\"tool\",\"content\":[";
    tool_output(_text, s.tools[k]);
    const bool json = s.tools[k] != 3 && s.tools[k] != 4;
    content_part(_text, json ? "json" : "", json ? "application/json" : "text/plain");
    _line += "],\"tool_call_id\":\"";
    append_call_id(s.tool_block_line, k);
    _line += "\",\"name\":\"";
    _line += kTools[s.tools[k]];
    _line += '"';
    s.context_tokens += tokens_of(_text);
    --_pending_tool_lines;
    if (++s.tool_next == s.tool_total) {
      s.phase = Phase::awaiting_reply;
      ++s.tool_depth;
      set_remove(_in_tool_block, &Session::tool_pos, s);
    }
    finish_accepted(s);
  }

  void receipt(Session& s, std::uint16_t status) {
    const bool ok = status == 200;
    begin_accepted(s, Payload::inference_receipt, &s.turn_id, ok ? &s.cause_id : nullptr);
    _line += "\"request_hash\":\"";
    for (int k = 0; k < 4; ++k) append_hex64(_line, _rng.next());
    _line += '"';
    field_u64(_line, "state_version", ok ? s.receipt_state_version : s.version);
    const Provider& p = kProviders[s.provider];
    field_str(_line, "provider", p.name);
    field_str(_line, "endpoint", p.endpoint);
    field_str(_line, "model", p.models[s.model]);
    const std::uint64_t input = s.context_tokens;
    const std::uint64_t cached = std::min(input, s.last_input_tokens - s.last_input_tokens / 8);
    key(_line, "usage");
    _line += "{\"input_tokens\":";
    append_u64(_line, input);
    _line += ",\"output_tokens\":";
    append_u64(_line, ok ? s.reply_tokens : 0);
    _line += ",\"cached_tokens\":";
    append_u64(_line, ok ? cached : 0);
    _line += '}';
    field_u64(_line, "latency_ms", ok ? _rng.between(180, 6000) : _rng.between(20, 900));
    field_u64(_line, "status", status);
    if (!ok) {
      field_str(_line, "error",
                status == 429 ? "rate limited: retry after 2s" : "upstream error: {\"type\":\"server_error\"}");
    } else {
      s.last_input_tokens = input;
      s.phase = Phase::idle;
    }
    finish_accepted(s);
  }

  void memory_set(Session& s) {
    const std::size_t label = static_cast<std::size_t>(_rng.below(kLabels.size()));
    begin_accepted(s, Payload::memory_set);
    write_memory_set(label);
    s.memory = static_cast<std::uint16_t>(s.memory | (1U << label));
    finish_accepted(s);
  }

  void write_memory_set(std::size_t label) {
    field_str(_line, "label", kLabels[label], true);
    field_str(_line, "value", _rng.pick(kLabelValues[label]));
    if (_rng.chance(0.3)) _line += ",\"pinned\":true";
  }

  void memory_delete(Session& s) {
    const int set = std::popcount(static_cast<unsigned>(s.memory));
    std::uint64_t nth = _rng.below(static_cast<std::uint64_t>(set));
    std::size_t label = 0;
    for (; label < kLabels.size(); ++label) {
      if ((s.memory & (1U << label)) != 0 && nth-- == 0) break;
    }
    begin_accepted(s, Payload::memory_delete);
    field_str(_line, "label", kLabels[label], true);
    s.memory = static_cast<std::uint16_t>(s.memory & ~(1U << label));
    finish_accepted(s);
  }

  void summary(Session& s) {
    begin_accepted(s, Payload::summary);
    _text.assign("So far: ");
    paragraph(_text, 2, 5);
    field_str(_line, "text", _text, true);
    field_u64(_line, "through_version", s.version);
    s.last_summary_version = s.version;
    finish_accepted(s);
  }

  void custom(Session& s) {
    begin_accepted(s, Payload::custom);
    const std::uint64_t kind = _rng.below(3);
    static constexpr auto kTypes =
        std::to_array<std::string_view>({"app.feedback", "app.ui_event", "com.example.blob"});
    field_str(_line, "type_name", kTypes[kind], true);
    key(_line, "data");
    _line += '[';
    if (kind == 2) {
      const std::uint64_t n = _rng.between(4, 24);
      for (std::uint64_t k = 0; k < n; ++k) {
        if (k > 0) _line += ',';
        append_u64(_line, _rng.below(256));
      }
    } else {
      _text.assign(kind == 0 ? "{\"rating\":" : "{\"action\":\"copy\",\"target\":");
      append_u64(_text, _rng.between(1, 5));
      _text += '}';
      for (std::size_t k = 0; k < _text.size(); ++k) {
        if (k > 0) _line += ',';
        append_u64(_line, static_cast<unsigned char>(_text[k]));
      }
    }
    _line += ']';
    finish_accepted(s);
  }

  void close_session(Session& s) {
    begin_accepted(s, Payload::session_closed);
    field_str(_line, "reason", _rng.pick(kCloseReasons), true);
    s.closed = true;
    set_remove(_active, &Session::active_pos, s);
    ++_closes;
    ++_stats.sessions_closed;
    finish_accepted(s);
  }

  // ----- faults ------------------------------------------------------------------------------------------------

  // Re-sends, verbatim, a recent accepted line of a session that is still open and not inside a tool block.
  bool try_duplicate() {
    for (int attempt = 0; attempt < 4 && _ring_count > 0; ++attempt) {
      const RingEntry& e = _ring[static_cast<std::size_t>(_rng.below(_ring_count))];
      const Session& s = _sessions[e.session];
      if (_i - e.line > _o.duplicate_lookback || s.closed || s.phase == Phase::tool_results) continue;
      ++_stats.duplicates;
      _sink(e.text);
      return true;
    }
    return false;
  }

  // A write that lost an optimistic-concurrency race: an expected_version 1..3 behind the session.
  bool try_stale() {
    for (int attempt = 0; attempt < 3 && !_active.empty(); ++attempt) {
      Session& s = pick_active();
      if (s.version < 2 || s.phase == Phase::tool_results) continue;
      const std::uint64_t expected = s.version - 1 - _rng.below(std::min<std::uint64_t>(s.version - 1, 3));
      if (_rng.chance(0.7)) {
        begin(s, Payload::message, &expected, nullptr, nullptr);
        _line += "\"role\":\"user\",\"content\":[";
        _text.clear();
        sentence(_text, 2, 12);
        content_part(_text);
        _line += ']';
      } else {
        begin(s, Payload::memory_set, &expected, nullptr, nullptr);
        write_memory_set(static_cast<std::size_t>(_rng.below(kLabels.size())));
      }
      _line += "}}";
      ++_stats.stale;
      _sink(_line);
      return true;
    }
    return false;
  }

  const Options& _o;
  const std::function<void(std::string_view)>& _sink;
  Rng _rng;
  std::uint64_t _id_hi = 0;
  std::uint64_t _id_key = 0;
  std::uint64_t _call_key = 0;
  std::uint64_t _i = 0;        // current line
  std::int64_t _now = 0;       // microseconds after kBaseTimeUs
  std::uint64_t _to_open = 0;  // sessions that appear: min(sessions, events)
  std::uint64_t _max_closes = 0;
  std::uint64_t _closes = 0;
  std::uint64_t _pending_tool_lines = 0;
  int _width = 6;
  std::vector<Session> _sessions;
  std::vector<std::uint32_t> _active;         // open sessions
  std::vector<std::uint32_t> _in_tool_block;  // sessions owing tool results
  std::vector<RingEntry> _ring;               // recent accepted lines without expected_version
  std::size_t _ring_next = 0;
  std::size_t _ring_count = 0;
  std::array<std::uint64_t, static_cast<std::size_t>(Payload::count)> _by_type{};
  Payload _type = Payload::message;
  bool _with_expected = false;
  IdText _id{};
  std::string _line;
  std::string _text;
  std::string _scratch;
  std::string _scratch_id;
  Stats _stats;
};

void validate(const Options& o) {
  if (o.events > 0 && o.sessions == 0) throw std::invalid_argument("workload: events need at least one session");
  if (o.sessions > 0xffffffffULL) throw std::invalid_argument("workload: at most 2^32 - 1 sessions");
  const auto rate_ok = [](double r) { return r >= 0.0 && r < 1.0; };
  if (!rate_ok(o.duplicate_rate) || !rate_ok(o.stale_rate) || o.duplicate_rate + o.stale_rate >= 1.0) {
    throw std::invalid_argument("workload: duplicate_rate and stale_rate must be in [0, 1) with a sum below 1");
  }
  if (o.duplicate_rate > 0 && o.duplicate_lookback == 0) {
    throw std::invalid_argument("workload: duplicate_rate > 0 needs duplicate_lookback > 0");
  }
  if (o.sessions > 0 && session_id(o, o.sessions - 1).size() > 256) {
    throw std::invalid_argument("workload: session ids would be longer than 256 bytes");
  }
}

}  // namespace

std::string session_id(const Options& options, std::uint64_t index) {
  const std::size_t width = std::max<std::size_t>(6, std::to_string(options.sessions).size());
  const std::string number = std::to_string(index + 1);
  std::string id(options.session_prefix);
  if (number.size() < width) id.append(width - number.size(), '0');
  id += number;
  return id;
}

Stats generate(const Options& options, const std::function<void(std::string_view json_line)>& sink) {
  validate(options);
  return Generator(options, sink).run();
}

}  // namespace statefold::workload
