// Private to the gateway: a fixed set of threads for the blocking part of turns (rendering, the upstream call,
// waiting for folds), so the HTTP server's I/O threads never block. Thread-safety: submit() and stop() from any
// thread.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace statefold::gateway::internal {

class Workers {
 public:
  explicit Workers(std::size_t n) {
    for (std::size_t i = 0; i < std::max<std::size_t>(1, n); ++i) _threads.emplace_back([this] { run(); });
  }
  ~Workers() { stop(); }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  // False once stopping: the job will not run.
  bool submit(std::function<void()> job) {
    {
      std::lock_guard lock(_mutex);
      if (_stopping) return false;
      _jobs.push_back(std::move(job));
    }
    _cv.notify_one();
    return true;
  }
  // Runs every job already queued, then joins the threads.
  void stop() {
    {
      std::lock_guard lock(_mutex);
      if (_stopping && _threads.empty()) return;
      _stopping = true;
    }
    _cv.notify_all();
    for (auto& t : _threads) {
      if (t.joinable()) t.join();
    }
    _threads.clear();
  }

 private:
  void run() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(_mutex);
        _cv.wait(lock, [&] { return _stopping || !_jobs.empty(); });
        if (_jobs.empty()) return;  // stopping, and every queued turn has run
        job = std::move(_jobs.front());
        _jobs.pop_front();
      }
      job();
    }
  }
  std::mutex _mutex;
  std::condition_variable _cv;
  std::deque<std::function<void()>> _jobs;
  std::vector<std::thread> _threads;
  bool _stopping = false;
};

}  // namespace statefold::gateway::internal
