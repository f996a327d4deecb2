// A bounded FIFO of tasks run in order by one worker thread: the server's single model is only
// ever touched from that thread, and the network threads never wait on inference (they submit
// and return; a full queue is answered at once with 503 + Retry-After).
// Tests: tests/python/test_server_load.py (ordering, no errors under 8 concurrent clients),
// tests/python/test_server_http.py (503 on overflow).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace frt::server {

class RequestQueue {
 public:
  enum class Admit { kQueued, kFull, kClosed };

  explicit RequestQueue(size_t capacity);
  ~RequestQueue();  // close() + join()
  RequestQueue(const RequestQueue&) = delete;
  RequestQueue& operator=(const RequestQueue&) = delete;

  void start();  // launches the worker thread
  // Bounded: kFull when `capacity` tasks are already waiting, kClosed after close().
  Admit submit(std::function<void()> task);
  // Unbounded, for the server's own work (load + warm-up) that must not be refused.
  void submit_control(std::function<void()> task);
  // Refuses new tasks; the worker finishes the queued ones (drops them with drop_pending),
  // then exits.
  void close(bool drop_pending = false);
  void join();

  size_t capacity() const { return capacity_; }
  size_t depth() const;  // waiting, not counting the one running
  bool idle() const;     // nothing waiting and nothing running

 private:
  void run();

  const size_t capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool closed_ = false;
  bool running_task_ = false;
  std::thread worker_;
};

}  // namespace frt::server
