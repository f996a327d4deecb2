// The bounded in-order task queue and its worker thread (see request_queue.h).
// Tests: tests/python/test_server_load.py, tests/python/test_server_http.py.
#include "server/request_queue.h"

#include <utility>

namespace frt::server {

RequestQueue::RequestQueue(size_t capacity) : capacity_(capacity) {}

RequestQueue::~RequestQueue() {
  close();
  join();
}

void RequestQueue::start() {
  if (!worker_.joinable()) worker_ = std::thread([this] { run(); });
}

RequestQueue::Admit RequestQueue::submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return Admit::kClosed;
    if (tasks_.size() >= capacity_) return Admit::kFull;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
  return Admit::kQueued;
}

void RequestQueue::submit_control(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void RequestQueue::close(bool drop_pending) {
  std::deque<std::function<void()>> dropped;  // destroyed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    if (drop_pending) dropped.swap(tasks_);
  }
  cv_.notify_all();
}

void RequestQueue::join() {
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

size_t RequestQueue::depth() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.size();
}

bool RequestQueue::idle() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.empty() && !running_task_;
}

void RequestQueue::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return closed_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // closed and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
      running_task_ = true;
    }
    task();  // tasks report their own failures; see ServerContext::submit
    std::lock_guard<std::mutex> lock(mu_);
    running_task_ = false;
  }
}

}  // namespace frt::server
