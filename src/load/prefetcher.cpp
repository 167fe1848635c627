// The Prefetcher's thread: mapped tensors in the engine's order, a step at a time, passing
// over what is in the page cache already, what the engine has reached, and what it released.
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "io/page_cache.hpp"
#include "weightmap/error.hpp"
#include "weightmap/mapped_file.hpp"
#include "weightmap/prefetch.hpp"

namespace weightmap {
namespace {

// One mapped tensor to prefetch. `position` is where it starts in prefetch order (the bytes of
// the tensors before it), the unit of reached() and distance_bytes.
struct PrefetchRange {
  std::string name;
  std::weak_ptr<MappedFile> mapping;
  std::size_t file = 0;      // rank of its file, in the order the loaded model names them
  std::uint64_t offset = 0;  // in the file
  std::uint64_t bytes = 0;
  std::uint64_t position = 0;
};

std::vector<PrefetchRange> prefetch_ranges(std::span<const TensorStorage> tensors,
                                           const std::vector<std::string>& order) {
  std::vector<PrefetchRange> mapped;
  std::unordered_map<const MappedFile*, std::size_t> file_rank;
  for (const TensorStorage& storage : tensors) {
    if (!storage.mapped || !storage.mapping || storage.bytes.empty()) continue;
    const std::byte* base = storage.mapping->span(0, 0).data();
    PrefetchRange range;
    range.name = storage.name;
    range.mapping = storage.mapping;
    range.file = file_rank.try_emplace(storage.mapping.get(), file_rank.size()).first->second;
    range.offset = static_cast<std::uint64_t>(storage.bytes.data() - base);
    range.bytes = storage.bytes.size();
    mapped.push_back(std::move(range));
  }
  std::stable_sort(mapped.begin(), mapped.end(), [](const auto& a, const auto& b) {
    return a.file != b.file ? a.file < b.file : a.offset < b.offset;
  });
  std::unordered_map<std::string_view, std::size_t> by_name;
  for (std::size_t i = 0; i < mapped.size(); ++i) by_name.emplace(mapped[i].name, i);

  // The named tensors first, in the engine's order, then the rest in file order.
  std::vector<PrefetchRange> out;
  std::vector<bool> taken(mapped.size(), false);
  for (const std::string& name : order) {
    const auto it = by_name.find(name);
    if (it == by_name.end() || taken[it->second]) continue;
    taken[it->second] = true;
    out.push_back(mapped[it->second]);
  }
  for (std::size_t i = 0; i < mapped.size(); ++i) {
    if (!taken[i]) out.push_back(std::move(mapped[i]));
  }
  std::uint64_t position = 0;
  for (PrefetchRange& range : out) {
    range.position = position;
    position += range.bytes;
  }
  return out;
}

// Every page under [offset, offset + n) of the mapping is in the page cache.
bool all_resident(const MappedFile& mapping, std::uint64_t offset, std::uint64_t n) {
  const std::span<const std::byte> bytes = mapping.span(offset, n);
  const std::vector<bool> pages = io::resident_pages(bytes.data(), bytes.size(), mapping.path());
  return std::all_of(pages.begin(), pages.end(), [](bool resident) { return resident; });
}

}  // namespace

struct Prefetcher::State {
  PrefetchOptions options;
  std::vector<PrefetchRange> ranges;
  std::unordered_map<std::string_view, std::size_t> by_name;

  mutable std::mutex mutex;
  std::condition_variable changed;
  bool cancel = false;
  // The last tensor the engine reached, in prefetch order: what starts before `engine_start`
  // is passed over; steps may start below `allowed_end` (the tensor's end + distance_bytes).
  std::uint64_t engine_start = 0;
  std::uint64_t allowed_end = 0;
  PrefetchProgress progress;
  std::exception_ptr failure;
  std::thread thread;

  // Waits until the step at `position` may start: within distance_bytes of the engine, or
  // cancelled. Returns false when cancelled.
  bool wait_for_room(std::uint64_t position) {
    std::unique_lock lock(mutex);
    changed.wait(lock,
                 [&] { return cancel || options.distance_bytes == 0 || position < allowed_end; });
    return !cancel;
  }

  std::uint64_t engine_at() const {
    std::lock_guard lock(mutex);
    return engine_start;
  }

  void count(std::uint64_t populated, std::uint64_t skipped) {
    std::lock_guard lock(mutex);
    progress.populated_bytes += populated;
    progress.skipped_bytes += skipped;
  }

  // Returns false when cancelled.
  bool prefetch(const PrefetchRange& range) {
    for (std::uint64_t at = 0; at < range.bytes;) {
      const std::uint64_t n = std::min<std::uint64_t>(options.step_bytes, range.bytes - at);
      if (!wait_for_room(range.position + at)) return false;
      const std::shared_ptr<MappedFile> mapping = range.mapping.lock();
      if (!mapping) {  // released by the engine
        count(0, range.bytes - at);
        return true;
      }
      if (range.position + at + n <= engine_at() || all_resident(*mapping, range.offset + at, n)) {
        count(0, n);  // the engine is past it, or it is in the cache already
      } else {
        mapping->populate_read(range.offset + at, n);
        count(n, 0);
      }
      at += n;
    }
    return true;
  }

  void run() noexcept {
    bool stopped = false;
    try {
      for (const PrefetchRange& range : ranges) {
        if (range.position + range.bytes <= engine_at()) {
          count(0, range.bytes);
          continue;
        }
        if (options.on_tensor) options.on_tensor(range.name);
        if (!prefetch(range)) {
          stopped = true;
          break;
        }
      }
    } catch (const std::exception& error) {
      std::lock_guard lock(mutex);
      failure = std::current_exception();
      progress.error = error.what();
    } catch (...) {
      std::lock_guard lock(mutex);
      failure = std::current_exception();
      progress.error = "unknown error";
    }
    std::lock_guard lock(mutex);
    progress.finished = true;
    progress.cancelled = stopped;
  }
};

Prefetcher::Prefetcher(std::span<const TensorStorage> tensors, PrefetchOptions options)
    : state_(std::make_unique<State>()) {
  if (options.step_bytes == 0) {
    throw Error(ErrorCode::invalid_argument, "PrefetchOptions::step_bytes must not be 0");
  }
  state_->ranges = prefetch_ranges(tensors, options.order);
  state_->options = std::move(options);
  state_->allowed_end = state_->options.distance_bytes;
  for (std::size_t i = 0; i < state_->ranges.size(); ++i) {
    state_->by_name.emplace(state_->ranges[i].name, i);
    state_->progress.total_bytes += state_->ranges[i].bytes;
  }
  state_->thread = std::thread([state = state_.get()] { state->run(); });
}

Prefetcher::~Prefetcher() {
  cancel();
  if (state_->thread.joinable()) state_->thread.join();
}

void Prefetcher::reached(std::string_view tensor) {
  const auto it = state_->by_name.find(tensor);
  if (it == state_->by_name.end()) return;
  const PrefetchRange& range = state_->ranges[it->second];
  {
    std::lock_guard lock(state_->mutex);
    state_->engine_start = std::max(state_->engine_start, range.position);
    state_->allowed_end = std::max(state_->allowed_end,
                                   range.position + range.bytes + state_->options.distance_bytes);
  }
  state_->changed.notify_all();
}

void Prefetcher::cancel() noexcept {
  {
    std::lock_guard lock(state_->mutex);
    state_->cancel = true;
  }
  state_->changed.notify_all();
}

PrefetchProgress Prefetcher::wait() {
  if (state_->thread.joinable()) state_->thread.join();
  std::lock_guard lock(state_->mutex);
  if (state_->failure) std::rethrow_exception(state_->failure);
  return state_->progress;
}

PrefetchProgress Prefetcher::progress() const {
  std::lock_guard lock(state_->mutex);
  return state_->progress;
}

}  // namespace weightmap
