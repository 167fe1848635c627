#include "lora/parallel_jobs.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace weightmap::lora {

void run_jobs(std::size_t jobs, unsigned workers,
              const std::function<void(std::size_t job, TileScratch& scratch)>& run) {
  if (jobs == 0) return;
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr first_error;
  std::mutex error_mutex;
  auto work = [&] {
    TileScratch scratch;
    while (!failed.load()) {
      const std::size_t job = next.fetch_add(1);
      if (job >= jobs) return;
      try {
        run(job, scratch);
      } catch (...) {
        const std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed.store(true);
      }
    }
  };
  const auto threads = static_cast<std::size_t>(std::clamp<std::size_t>(workers, 1, jobs));
  if (threads <= 1) {
    work();
  } else {
    std::vector<std::jthread> pool;
    pool.reserve(threads);
    for (std::size_t i = 0; i < threads; ++i) pool.emplace_back(work);
  }
  if (first_error) std::rethrow_exception(first_error);
}

}  // namespace weightmap::lora
