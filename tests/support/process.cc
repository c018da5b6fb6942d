#include "support/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace statefold::testing {

namespace {

// Live children, for the fatal-signal and exit hooks. Plain atomics in a fixed array: the signal handler may only
// do async-signal-safe things, so no locks and no allocation.
constexpr std::size_t kMaxChildren = 256;
std::array<std::atomic<pid_t>, kMaxChildren> g_children{};

void register_child(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = 0;
    if (slot.compare_exchange_strong(expected, pid)) return;
  }
  // More than kMaxChildren at once: the destructor still cleans up; only the crash hook misses this one.
}

void unregister_child(pid_t pid) {
  for (auto& slot : g_children) {
    pid_t expected = pid;
    if (slot.compare_exchange_strong(expected, 0)) return;
  }
}

void kill_all_children() {
  for (auto& slot : g_children) {
    const pid_t pid = slot.load();
    if (pid > 0) ::kill(pid, SIGKILL);
  }
}

extern "C" void on_fatal_signal(int sig) {
  kill_all_children();
  // SA_RESETHAND restored the default action: die of the same signal, as if we had not been here.
  ::raise(sig);
}

void install_hooks() {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) {
      struct sigaction action;
      std::memset(&action, 0, sizeof action);
      action.sa_handler = &on_fatal_signal;
      action.sa_flags = SA_RESETHAND;
      sigemptyset(&action.sa_mask);
      sigaction(sig, &action, nullptr);
    }
    std::atexit(&kill_all_children);
  });
}

std::string join_command_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const auto& a : argv) {
    if (!out.empty()) out.push_back(' ');
    const bool plain = !a.empty() && a.find_first_of(" \t\n'\"\\$") == std::string::npos;
    out += plain ? a : "'" + a + "'";
  }
  return out;
}

ExitStatus decode_status(int raw) {
  ExitStatus s;
  if (WIFEXITED(raw)) {
    s.exited = true;
    s.code = WEXITSTATUS(raw);
  } else if (WIFSIGNALED(raw)) {
    s.signal = WTERMSIG(raw);
  }
  return s;
}

}  // namespace

std::string ExitStatus::describe() const {
  if (exited) return "exit " + std::to_string(code);
  if (signal != 0) {
    const char* name = strsignal(signal);
    return "killed by signal " + std::to_string(signal) + " (" + (name != nullptr ? name : "?") + ")";
  }
  return "unknown status";
}

Process Process::spawn(const std::vector<std::string>& argv, const std::string& stdout_path,
                       const std::string& stderr_path) {
  if (argv.empty()) throw std::invalid_argument("Process::spawn: empty argv");
  install_hooks();

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.empty() ? "/dev/null" : stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.empty() ? "/dev/null" : stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);

  // The child starts with default signal dispositions and nothing blocked, whatever this process set up.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigdefault(&attr, &all);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);

  pid_t pid = -1;
  const bool search_path = argv[0].find('/') == std::string::npos;
  const int rc = search_path ? posix_spawnp(&pid, argv[0].c_str(), &actions, &attr, cargv.data(), environ)
                             : posix_spawn(&pid, argv[0].c_str(), &actions, &attr, cargv.data(), environ);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    throw std::runtime_error("cannot spawn " + join_command_line(argv) + ": " + std::strerror(rc));
  }
  register_child(pid);
  return Process(pid, join_command_line(argv));
}

Process::Process(pid_t pid, std::string command_line) : _pid(pid), _command_line(std::move(command_line)) {}

Process::Process(Process&& other) noexcept
    : _pid(other._pid), _command_line(std::move(other._command_line)), _status(other._status) {
  other._pid = -1;
}

Process& Process::operator=(Process&& other) noexcept {
  if (this != &other) {
    if (_pid > 0 && !_status) kill();
    _pid = other._pid;
    _command_line = std::move(other._command_line);
    _status = other._status;
    other._pid = -1;
  }
  return *this;
}

Process::~Process() {
  if (_pid > 0 && !_status) kill();
}

void Process::reap(int raw_status) {
  _status = decode_status(raw_status);
  unregister_child(_pid);
}

bool Process::running() {
  if (_pid <= 0 || _status) return false;
  int raw = 0;
  pid_t r = ::waitpid(_pid, &raw, WNOHANG);
  while (r < 0 && errno == EINTR) r = ::waitpid(_pid, &raw, WNOHANG);
  if (r == _pid) {
    reap(raw);
    return false;
  }
  if (r < 0) {  // not our child any more (cannot happen unless someone else reaped it)
    _status = ExitStatus{};
    unregister_child(_pid);
    return false;
  }
  return true;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
  return _status;
}

bool Process::signal(int sig) {
  if (_pid <= 0 || _status) return false;
  return ::kill(_pid, sig) == 0;
}

ExitStatus Process::kill() {
  if (_pid <= 0) return ExitStatus{};
  if (!_status) {
    ::kill(_pid, SIGKILL);
    int raw = 0;
    pid_t r = ::waitpid(_pid, &raw, 0);
    while (r < 0 && errno == EINTR) r = ::waitpid(_pid, &raw, 0);
    if (r == _pid) {
      reap(raw);
    } else {
      _status = ExitStatus{};
      unregister_child(_pid);
    }
  }
  return *_status;
}

RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  // Output goes through files rather than pipes: no reader thread, no pipe-buffer deadlock on large output.
  char pattern[] = "/tmp/statefold-run-XXXXXX";
  if (mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  const std::string dir = pattern;
  const std::string out_path = dir + "/stdout";
  const std::string err_path = dir + "/stderr";
  RunResult result;
  {
    Process p = Process::spawn(argv, out_path, err_path);
    if (auto status = p.wait_for(timeout)) {
      result.status = *status;
    } else {
      result.timed_out = true;
      result.status = p.kill();
    }
  }
  result.out = read_file(out_path);
  result.err = read_file(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  ::rmdir(dir.c_str());
  return result;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {

// The lowest port the kernel hands out for outgoing connections (32768 when unreadable, Linux's default).
int ephemeral_low() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  return (in >> low) && low > 1024 ? low : 32768;
}

bool can_bind(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  // No SO_REUSEADDR: a port in TIME_WAIT counts as taken, which is the cautious answer.
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

}  // namespace

std::uint16_t free_port(int count) {
  const int low = 10000;
  const int high = ephemeral_low() - count;  // exclusive
  if (count < 1 || high <= low) throw std::runtime_error("no port range below the ephemeral ports to choose from");
  std::mt19937 pick(std::random_device{}());
  std::uniform_int_distribution<int> base(low, high - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int first = base(pick);
    bool all = true;
    for (int i = 0; i < count && all; ++i) all = can_bind(static_cast<std::uint16_t>(first + i));
    if (all) return static_cast<std::uint16_t>(first);
  }
  throw std::runtime_error("cannot find " + std::to_string(count) + " free consecutive loopback ports");
}

Listener listen_loopback(int backlog) {
  Listener out;
  out.fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof addr;
  if (out.fd < 0 || ::bind(out.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(out.fd, backlog) != 0 || ::getsockname(out.fd, reinterpret_cast<sockaddr*>(&addr), &size) != 0) {
    const std::string why = std::strerror(errno);
    if (out.fd >= 0) ::close(out.fd);
    throw std::runtime_error("cannot listen on a loopback port: " + why);
  }
  out.port = ntohs(addr.sin_port);
  return out;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const int error = errno;
    ::close(fd);
    errno = error;
    return -1;
  }
  return fd;
}

}  // namespace statefold::testing
