// JSON string literals for code that writes JSON by hand on hot paths (log lines, generated workloads), where a
// document model would cost more than the text itself.
#pragma once

#include <string>
#include <string_view>

namespace statefold::base {

// Appends `text` as a JSON string literal, quotes included. UTF-8 passes through unchanged; control characters,
// quotes and backslashes are escaped.
void append_json_string(std::string& out, std::string_view text);

}  // namespace statefold::base
