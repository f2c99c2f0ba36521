// Work spread over threads: the one helper the loader and the segments use for it.
#pragma once

#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace ndshm::detail {

/// Runs fn(0) .. fn(n - 1), each on a thread of its own (fn(0) on the calling one), and waits for them
/// all. fn must not throw. When no thread can be started (the system has none to spare, or no memory
/// for one), the calling thread runs the rest itself: never an error.
template <class Fn> void run_parallel(std::size_t n, Fn &&fn) noexcept {
  std::vector<std::thread> threads;
  std::size_t i = 1;
  try {
    threads.reserve(n);
    for (; i < n; ++i)
      threads.emplace_back(fn, i);
  } catch (...) {
  }
  if (n != 0)
    fn(0);
  for (; i < n; ++i)
    fn(i);
  for (auto &thread : threads)
    thread.join();
}

/// Runs fn(0) .. fn(n - 1) on `threads` threads (run_parallel's), each taking the next index as soon
/// as it is done with its last: a thread that runs slower (the host took its core away, its pages
/// came slowly) leaves more of the work to the others. fn must not throw.
template <class Fn> void run_queue(std::size_t threads, std::size_t n, Fn &&fn) noexcept {
  std::atomic<std::size_t> next{0};
  run_parallel(threads < n ? threads : n, [&](std::size_t) {
    for (std::size_t i = next++; i < n; i = next++)
      fn(i);
  });
}

} // namespace ndshm::detail
