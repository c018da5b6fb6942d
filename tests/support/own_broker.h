// A Kafka broker of the test's own (tools/kafka.sh on a free port, its data in the test's directory), for tests
// that kill the broker: the shared one of STATEFOLD_BROKERS must stay up for the other tests.
#pragma once

#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "support/cluster.h"

namespace statefold::testing {

class OwnBroker {
 public:
  explicit OwnBroker(std::string dir) : _dir(std::move(dir)), _port(free_port(2)) {}  // PLAINTEXT and CONTROLLER (port + 1)
  ~OwnBroker() {
    if (_started) kafka({"stop", "--dir", _dir});
  }

  // Starts it, or starts it again on the same data after kill().
  bool start() {
    _started = kafka({"start", "--port", std::to_string(_port), "--dir", _dir});
    return _started;
  }

  // SIGKILL: no clean shutdown, as when a machine is lost. Returns once the process is gone.
  bool kill() {
    std::ifstream in(_dir + "/kafka.pid");
    pid_t pid = 0;
    in >> pid;
    if (pid <= 0) {
      ADD_FAILURE() << "no broker pid in " << _dir;
      return false;
    }
    if (::kill(pid, SIGKILL) != 0) return false;
    return wait_until([&] { return ::kill(pid, 0) != 0; }, std::chrono::seconds(30), std::chrono::milliseconds(50));
  }

  std::string brokers() const { return "127.0.0.1:" + std::to_string(_port); }

 private:
  bool kafka(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"bash", source_dir() + "/tools/kafka.sh"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run(argv, std::chrono::minutes(3));
    if (!r.status.exited_with(0)) {
      ADD_FAILURE() << "kafka.sh " << args[0] << ": " << r.status.describe() << "\n" << r.err;
    }
    return r.status.exited_with(0);
  }

  std::string _dir;
  std::uint16_t _port;
  bool _started = false;
};

}  // namespace statefold::testing
