// Child processes for tests: spawn a program (posix_spawn) with its stdout and stderr in files, wait for it with a
// timeout, signal it, read its exit status. A Process that goes out of scope while its child still runs SIGKILLs and
// reaps it, and a fatal signal to the test process (ctest's timeout, Ctrl-C, an abort) kills every live child
// first, so no test leaves a `statefold serve` behind.
//
//   auto serve = Process::spawn({bin, "serve", "--data-dir", dir}, dir + "/serve.out", dir + "/serve.err");
//   ...
//   serve.signal(SIGTERM);
//   auto status = serve.wait_for(std::chrono::seconds(60));
//   ASSERT_TRUE(status && status->exited_with(0)) << (status ? status->describe() : "still running");
//
// Thread-safety: a Process is used from one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace statefold::testing {

struct ExitStatus {
  bool exited = false;  // returned from main or called exit(); `code` holds the status
  int code = -1;
  int signal = 0;       // killed by this signal (exited == false)

  bool exited_with(int expected) const { return exited && code == expected; }
  std::string describe() const;  // "exit 0", "killed by signal 9 (Killed)"
};

class Process {
 public:
  // Starts argv[0] (a path, or a name looked up in PATH) with argv. stdin reads /dev/null; stdout and stderr go to
  // the given files (truncated; "" means /dev/null). Throws std::runtime_error when the spawn itself fails.
  static Process spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                       const std::string& stderr_path);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // SIGKILL and reap if still running

  pid_t pid() const { return _pid; }
  const std::string& command_line() const { return _command_line; }

  // True while the child has not exited (reaps it, and records its status, when it has).
  bool running();
  // Waits until the child exits or `timeout` passes; nullopt on timeout (the child keeps running).
  std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
  // The status once the child has exited.
  const std::optional<ExitStatus>& status() const { return _status; }

  // Sends `sig` unless the child has already been reaped. Returns false if it was not sent.
  bool signal(int sig);
  // SIGKILL, then reap: returns the status (normally "killed by signal 9", or an exit that raced the kill).
  ExitStatus kill();

 private:
  Process(pid_t pid, std::string command_line);
  void reap(int raw_status);

  pid_t _pid = -1;
  std::string _command_line;
  std::optional<ExitStatus> _status;
};

// Runs a program to completion: its exit status and what it wrote. A run that outlives `timeout` is killed and
// reported as such (status.exited false, signal SIGKILL, timed_out true).
struct RunResult {
  ExitStatus status;
  bool timed_out = false;
  std::string out;
  std::string err;
};
RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout = std::chrono::minutes(5));

// The whole content of a file ("" if it cannot be read).
std::string read_file(const std::string& path);

// The first of `count` consecutive loopback TCP ports nobody uses right now. They are chosen below the kernel's
// ephemeral range (net.ipv4.ip_local_port_range), so an outgoing connection's local port can never take one between
// this check and a server's bind, nor while a killed server is down and restarting on the same port.
std::uint16_t free_port(int count = 1);

// A TCP connection to 127.0.0.1:`port` that the caller owns (and closes): its descriptor, or -1 with errno set.
int connect_loopback(std::uint16_t port);

// A socket listening on 127.0.0.1 at a port the kernel picks, with `backlog`, that never accepts unless the caller
// does (a silent or overloaded peer): its descriptor, which the caller owns (and closes), and the port. Throws when
// the socket cannot be made.
struct Listener {
  int fd = -1;
  std::uint16_t port = 0;
};
Listener listen_loopback(int backlog);

}  // namespace statefold::testing
