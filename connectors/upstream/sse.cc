// The event-stream parser of sse.h, after https://html.spec.whatwg.org/multipage/server-sent-events.html#parsing.
#include "connectors/upstream/sse.h"

#include <charconv>

namespace statefold::upstream {

bool SseParser::feed(std::string_view bytes, const OnEvent& on_event) {
  if (_overflow) return false;
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (_after_cr) {
      _after_cr = false;
      if (bytes[i] == '\n') {
        ++i;
        continue;
      }
    }
    const std::size_t end = bytes.find_first_of("\r\n", i);
    if (end == std::string_view::npos) {
      if (_line.size() + (bytes.size() - i) > kMaxLineBytes) {
        _overflow = true;
        return false;
      }
      _line.append(bytes.substr(i));
      break;
    }
    std::string_view text = bytes.substr(i, end - i);
    if (!_line.empty()) {
      _line.append(text);
      text = _line;
    }
    if (text.size() > kMaxLineBytes) {
      _overflow = true;
      return false;
    }
    _after_cr = bytes[end] == '\r';
    i = end + 1;
    const bool go_on = line(text, on_event);
    _line.clear();
    if (!go_on) return false;
  }
  return true;
}

bool SseParser::clean_end() const { return !_pending && _line.empty() && !_overflow; }

bool SseParser::line(std::string_view text, const OnEvent& on_event) {
  if (!_started) {
    _started = true;
    if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  }
  if (text.empty()) {  // dispatch
    _pending = false;
    if (!_has_data) {
      _event.clear();
      _retry.reset();
      return true;
    }
    SseEvent event;
    event.event = std::move(_event);
    _data.pop_back();  // the '\n' after the last data line
    event.data = std::move(_data);
    event.id = _id;
    event.retry_ms = _retry;
    _event.clear();
    _data.clear();
    _retry.reset();
    _has_data = false;
    ++_events;
    return on_event(event);
  }
  if (text.front() == ':') {
    ++_comments;
    return true;
  }
  _pending = true;
  const std::size_t colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    _data.append(value);
    _data.push_back('\n');
    _has_data = true;
  } else if (field == "event") {
    _event.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) _id.assign(value);
  } else if (field == "retry") {
    int ms = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
    if (ec == std::errc() && end == value.data() + value.size() && !value.empty() && value.front() != '-') {
      _retry = ms;
    }
  }
  return true;  // other fields are ignored
}

}  // namespace statefold::upstream
