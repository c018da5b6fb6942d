#include "connectors/protocol/json.h"

#include "connectors/context/canonical_json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <vector>

namespace statefold::protocol::detail {

void num(std::string& out, std::uint64_t n) {
  std::array<char, 24> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), r.ptr);
}

void inum(std::string& out, std::int64_t n) {
  std::array<char, 24> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), n);
  out.append(buf.data(), r.ptr);
}

void dbl(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  std::array<char, 32> buf{};
  auto r = std::to_chars(buf.data(), buf.data() + buf.size(), d);
  out.append(buf.data(), r.ptr);
}

base::Result<void> canonical(std::string& out, const json::value& v, bool sort_keys) {
  return context::append_canonical_json(out, v, sort_keys);
}

std::string canonical(const json::value& v) {
  std::string out;
  (void)canonical(out, v);
  return out;
}

base::Result<json::value> parse(std::string_view text, std::string_view what) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec) return base::make_error(std::string(what) + " is not valid JSON: " + ec.message());
  return v;
}

const json::value* member(const json::object& o, std::string_view name) {
  const json::value* v = o.if_contains(name);
  return v == nullptr || v->is_null() ? nullptr : v;
}

std::string string_or(const json::object& o, std::string_view name, std::string_view fallback) {
  const json::value* v = member(o, name);
  if (v == nullptr || !v->is_string()) return std::string(fallback);
  return std::string(v->get_string());
}

std::uint64_t uint_or(const json::object& o, std::string_view name, std::uint64_t fallback) {
  const json::value* v = member(o, name);
  if (v == nullptr) return fallback;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64()) return v->get_int64() < 0 ? 0 : static_cast<std::uint64_t>(v->get_int64());
  if (v->is_double() && v->get_double() >= 0) return static_cast<std::uint64_t>(v->get_double());
  return fallback;
}

}  // namespace statefold::protocol::detail
