// libFuzzer: serve's routing configuration (TOML: upstream endpoints, routes, budgets) from text to a Router.
// Bad configuration is an error naming the file and line, never a crash.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "connectors/upstream/routing.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)statefold::upstream::load_routing_toml(text, "fuzz.toml");
  return 0;
}
