#include <string>

#include "commands.h"

namespace statefold::cli {

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0) return std::nullopt;
  int port = 0;
  try {
    std::size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1) return std::nullopt;
  } catch (...) {
    return std::nullopt;
  }
  if (port < 0 || port > 65535) return std::nullopt;
  return std::make_pair(address.substr(0, colon), static_cast<std::uint16_t>(port));
}

}  // namespace statefold::cli
