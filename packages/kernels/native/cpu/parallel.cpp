#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "../common/backend.h"

namespace tk::cpu {
namespace {

class Pool {
 public:
  explicit Pool(int n) : n_(n) {
    for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  int size() const { return n_; }

  // Runs body(chunkIndex) for chunk in [0, chunks) on all threads; returns when all are done.
  // A chunk that throws (std::bad_alloc from a kernel's scratch vector, a tk::Error) stops the
  // hand-out of further chunks; run() still waits for every thread to leave the body (the
  // caller's frame, and `body` with it, must outlive them) and then rethrows the first
  // exception on the calling thread, where the binding turns it into a JavaScript error.
  void run(int64_t chunks, const std::function<void(int64_t)>& body) {
    std::unique_lock<std::mutex> runLock(runMu_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(mu_);
      body_ = &body;
      chunks_ = chunks;
      next_.store(0);
      error_ = nullptr;
      pending_ = static_cast<int>(workers_.size());
      ++generation_;
    }
    cv_.notify_all();
    work();  // never throws
    std::exception_ptr error;
    {
      std::unique_lock<std::mutex> lk(mu_);
      done_.wait(lk, [this] { return pending_ == 0; });
      body_ = nullptr;
      error = std::exchange(error_, nullptr);
    }
    if (error) std::rethrow_exception(error);
  }

 private:
  void work() noexcept {
    for (;;) {
      int64_t c = next_.fetch_add(1);
      if (c >= chunks_) break;
      try {
        (*body_)(c);
      } catch (...) {
        {
          std::lock_guard<std::mutex> lk(mu_);
          if (!error_) error_ = std::current_exception();
        }
        next_.store(chunks_);  // the remaining chunks are skipped
      }
    }
  }
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return generation_ != seen; });
        seen = generation_;
        if (stop_) return;
      }
      work();
      {
        std::lock_guard<std::mutex> lk(mu_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  int n_;
  std::vector<std::thread> workers_;
  std::mutex mu_, runMu_;
  std::condition_variable cv_, done_;
  uint64_t generation_ = 0;
  bool stop_ = false;
  const std::function<void(int64_t)>* body_ = nullptr;
  int64_t chunks_ = 0;
  std::atomic<int64_t> next_{0};
  int pending_ = 0;
  std::exception_ptr error_;  // the first exception of this region (guarded by mu_)
};

constexpr long MAX_THREADS = 256;

// TINYLLAMA_CPU_THREADS: unset or empty means every core (at most MAX_THREADS); anything but a
// whole number from 1 to MAX_THREADS is an error (atoi made "abc", "0" or "8 cores" one thread
// without a word). The error surfaces from init(), so loadBackend names it.
int threadsFromEnv() {
  const char* env = std::getenv("TINYLLAMA_CPU_THREADS");
  if (env == nullptr || *env == '\0') {
    long hw = static_cast<long>(std::thread::hardware_concurrency());
    return static_cast<int>(std::clamp(hw, 1L, MAX_THREADS));
  }
  char* end = nullptr;
  errno = 0;
  long n = std::strtol(env, &end, 10);
  if (end == env || *end != '\0' || errno != 0 || n < 1 || n > MAX_THREADS)
    throw Error(std::string("TINYLLAMA_CPU_THREADS must be a whole number from 1 to ") +
                std::to_string(MAX_THREADS) + " (or unset for every core), got \"" + env + "\"");
  return static_cast<int>(n);
}

Pool& pool() {
  static Pool p(threadsFromEnv());
  return p;
}

}  // namespace

int threadCount() { return pool().size(); }

void parallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  int64_t chunks = (n + grain - 1) / grain;
  if (chunks == 1 || pool().size() == 1) {
    for (int64_t c = 0; c < chunks; ++c) fn(c * grain, std::min(n, (c + 1) * grain));
    return;
  }
  pool().run(chunks, [&](int64_t c) { fn(c * grain, std::min(n, (c + 1) * grain)); });
}

}  // namespace tk::cpu
