// tests/support/fake_upstream.py (the scripted fake model endpoint) as a child process, on a port it picks itself
// and reports in a file. Tests that use it define STATEFOLD_SOURCE_DIR and link tests/support/process.cc.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/process.h"

namespace statefold::testing {

class FakeUpstreamProcess {
 public:
  // Starts it with its output in `dir` (fake.out, fake.err) and `extra` arguments; throws std::runtime_error with
  // its stderr when it does not report a port within 20 s.
  explicit FakeUpstreamProcess(const std::string& dir, std::vector<std::string> extra = {}) {
    const std::string script = std::string(STATEFOLD_SOURCE_DIR) + "/tests/support/fake_upstream.py";
    std::vector<std::string> argv = {"python3", script, "--port", "0", "--port-file", dir + "/fake.port"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    _process.emplace(Process::spawn(argv, dir + "/fake.out", dir + "/fake.err"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = read_file(dir + "/fake.port");
      if (!text.empty()) {
        _port = static_cast<std::uint16_t>(std::stoi(text));
        return;
      }
      if (!_process->running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("the fake upstream did not start: " + read_file(dir + "/fake.err"));
  }

  std::uint16_t port() const { return _port; }

 private:
  std::optional<Process> _process;
  std::uint16_t _port = 0;
};

}  // namespace statefold::testing
