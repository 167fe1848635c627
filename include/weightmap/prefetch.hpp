// Background prefetching of mapped tensors, for an engine's first run on a cold page cache.
//
// With mapped weights "ready" is instant, but the first graph run then pays a page fault (a
// disk read) each time it reaches a weight it has not touched yet, in the order the graph
// touches them. A Prefetcher populates the mapped tensors from a thread of its own, in the
// order the engine will use them, so the engine mostly finds its weights in the page cache.
// It reads pages into the page cache and maps them for reading only (MADV_POPULATE_READ, or
// one read per page): nothing becomes private memory, copy-on-write mappings included.
// Opt-in: on a warm cache it costs a residency check per step and nothing else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/export.hpp"
#include "weightmap/load.hpp"

WEIGHTMAP_API_BEGIN
namespace weightmap {

struct PrefetchOptions {
  // Tensor names in the order the engine will read them; tensors not named follow in file
  // order (the order of the files in the model, then offsets). Empty: file order. A name that
  // is not a mapped tensor of the loaded model is ignored (loaded tensors are in memory
  // already).
  std::vector<std::string> order;
  // How far (in tensor bytes, in prefetch order) the prefetcher may run past the end of the
  // last tensor the engine said it reached (Prefetcher::reached), or past the start before
  // the engine reached any. 0: no bound, everything is populated as fast as the disk allows. A
  // bound keeps a model larger than free memory from pushing the engine's own pages out of the
  // cache before it uses them.
  std::uint64_t distance_bytes = 0;
  // Pages are populated this many bytes at a time; cancel() and reached() take effect
  // between steps.
  std::size_t step_bytes = std::size_t{4} << 20;
  // Called from the prefetch thread when it starts on a tensor (for logs and tests).
  std::function<void(std::string_view tensor)> on_tensor;
};

struct PrefetchProgress {
  std::uint64_t total_bytes = 0;      // bytes of the mapped tensors to prefetch
  std::uint64_t populated_bytes = 0;  // populated by the prefetcher
  // Passed over: already in the page cache, behind the engine, or released by the engine.
  std::uint64_t skipped_bytes = 0;
  bool finished = false;   // the thread has stopped (done, cancelled or failed)
  bool cancelled = false;  // stopped by cancel() or the destructor before the end
  std::string error;       // why it stopped early on a failure (empty when it did not)
};

// Starts prefetching on construction; the destructor cancels and joins. The prefetcher holds
// no mapping alive: a tensor the engine releases (LoadedModel::release) meanwhile is passed
// over. A page that cannot be read (the file shrank under the mapping) stops the prefetcher
// with the error in its progress; it never raises SIGBUS. The LoadedModel (or Binding) may be
// destroyed or moved while the prefetcher runs.
class Prefetcher {
 public:
  // The mapped tensors among `tensors` (a LoadedModel's, or a ggml Binding's
  // mapped_tensors()); the others are in memory already.
  explicit Prefetcher(std::span<const TensorStorage> tensors, PrefetchOptions options = {});
  explicit Prefetcher(const LoadedModel& loaded, PrefetchOptions options = {})
      : Prefetcher(std::span<const TensorStorage>(loaded.tensors), std::move(options)) {}
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The engine is about to read `tensor`: the prefetcher passes over what lies before it in
  // prefetch order (the engine's own faults bring those in) and may run distance_bytes past
  // it. Names not in the prefetch order are ignored. Thread-safe, cheap.
  void reached(std::string_view tensor);
  // Stops after the current step. Thread-safe.
  void cancel() noexcept;
  // Waits for the thread to stop and returns the final progress. Throws the Error that
  // stopped it early (Error(io) naming the file and offset for an unreadable page). One
  // thread at a time.
  PrefetchProgress wait();
  PrefetchProgress progress() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace weightmap
WEIGHTMAP_API_END
