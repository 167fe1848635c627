// Prefetcher: the engine's order, then file order; a bounded distance ahead of the engine;
// passing over what the engine reached or released; no private memory; unreadable pages as
// errors, not SIGBUS.
#include "weightmap/prefetch.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "support/page_cache_drop.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap {
namespace {

using testing::SafetensorsBuilder;
using testing::TempDir;

constexpr std::uint64_t kTensorBytes = 64 << 10;  // 16 pages each

struct Fixture {
  TempDir dir;
  std::string path;
  Model model;

  explicit Fixture(std::initializer_list<const char*> names) : path(dir / "model.safetensors") {
    SafetensorsBuilder builder;
    for (const char* name : names) builder.add(name, "F32", {kTensorBytes / 4});
    testing::write_file(path, builder.bytes());
    model = open_model(path);
  }

  LoadedModel load_all(bool writable = false) const {
    std::vector<TensorRequest> requests;
    for (const TensorInfo& tensor : model.tensors()) {
      TensorRequest request;
      request.name = tensor.name;
      request.device.alignment = 1;
      request.writes_in_place = writable;
      requests.push_back(std::move(request));
    }
    LoadOptions options;
    options.cache_from_env = false;
    return load(model, requests, options);
  }

  // Writes the file out and drops it from the page cache, so there is something to prefetch.
  // False where the cache keeps it (tmpfs).
  bool evict() const {
    return testing::drop_from_page_cache(path) && page_cache_residency(model).resident_bytes == 0;
  }
};

// The names on_tensor gives, from the prefetch thread.
struct Visits {
  std::mutex mutex;
  std::vector<std::string> names;
  std::promise<void> reached_d;

  std::function<void(std::string_view)> recorder() {
    return [this](std::string_view name) {
      std::lock_guard lock(mutex);
      names.emplace_back(name);
      if (name == "d") reached_d.set_value();
    };
  }
  std::vector<std::string> seen() {
    std::lock_guard lock(mutex);
    return names;
  }
};

bool contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(Prefetcher, PopulatesEveryMappedTensorInFileOrder) {
  const Fixture fx({"a", "b", "c"});
  const LoadedModel loaded = fx.load_all();
  const bool evicted = fx.evict();
  Visits visits;
  PrefetchOptions options;
  options.on_tensor = visits.recorder();
  Prefetcher prefetcher(loaded, options);
  const PrefetchProgress done = prefetcher.wait();
  EXPECT_TRUE(done.finished);
  EXPECT_FALSE(done.cancelled);
  EXPECT_EQ(done.error, "");
  EXPECT_EQ(done.total_bytes, 3 * kTensorBytes);
  EXPECT_EQ(done.populated_bytes + done.skipped_bytes, done.total_bytes);
  // Readahead may bring the next tensors in with the first, which are then passed over.
  if (evicted) {
    EXPECT_GT(done.populated_bytes, 0u);
  }
  EXPECT_EQ(visits.seen(), (std::vector<std::string>{"a", "b", "c"}));
  const Residency residency = page_cache_residency(fx.model);
  EXPECT_EQ(residency.resident_bytes, residency.tensor_bytes);
}

TEST(Prefetcher, TakesTheEnginesOrderFirstThenFileOrder) {
  const Fixture fx({"a", "b", "c", "d"});
  const LoadedModel loaded = fx.load_all();
  Visits visits;
  PrefetchOptions options;
  options.order = {"c", "not-a-tensor", "a"};
  options.on_tensor = visits.recorder();
  Prefetcher prefetcher(loaded, options);
  prefetcher.wait();
  EXPECT_EQ(visits.seen(), (std::vector<std::string>{"c", "a", "b", "d"}));
}

TEST(Prefetcher, StaysWithinTheDistancePastTheTensorTheEngineReached) {
  const Fixture fx({"a", "b", "c", "d", "e"});
  const LoadedModel loaded = fx.load_all();
  Visits visits;
  PrefetchOptions options;
  options.distance_bytes = 1;  // one step past the engine's tensor at most
  options.step_bytes = 4096;
  options.on_tensor = visits.recorder();
  Prefetcher prefetcher(loaded, options);
  // Until the engine reaches something, only the first step of "a" is allowed, so "b" cannot
  // start before this call, and once the engine is at "c" it lies behind it.
  prefetcher.reached("c");
  visits.reached_d.get_future().wait();  // d's first step lies within the distance
  const std::vector<std::string> before = visits.seen();
  EXPECT_FALSE(contains(before, "b"));
  EXPECT_FALSE(contains(before, "e")) << "ran more than the distance past the engine";
  EXPECT_TRUE(contains(before, "c"));

  prefetcher.reached("e");
  const PrefetchProgress done = prefetcher.wait();
  EXPECT_TRUE(done.finished);
  EXPECT_FALSE(done.cancelled);
  EXPECT_EQ(visits.seen().back(), "e");
  EXPECT_GE(done.skipped_bytes, kTensorBytes);  // all of "b" at least
  EXPECT_EQ(done.populated_bytes + done.skipped_bytes, done.total_bytes);
}

TEST(Prefetcher, CancelStopsIt) {
  const Fixture fx({"a", "b"});
  const LoadedModel loaded = fx.load_all();
  PrefetchOptions options;
  options.distance_bytes = 1;
  Prefetcher prefetcher(loaded, options);
  prefetcher.cancel();
  const PrefetchProgress done = prefetcher.wait();
  EXPECT_TRUE(done.finished);
  EXPECT_TRUE(done.cancelled);
  EXPECT_LT(done.populated_bytes + done.skipped_bytes, done.total_bytes);
}

TEST(Prefetcher, PassesOverTensorsTheEngineReleased) {
  const Fixture fx({"a", "b", "c"});
  auto loaded = std::make_unique<LoadedModel>(fx.load_all());
  PrefetchOptions options;
  options.distance_bytes = 1;
  options.step_bytes = 4096;
  Prefetcher prefetcher(*loaded, options);
  loaded.reset();  // every mapping goes with it: nothing left to read
  prefetcher.reached("c");
  const PrefetchProgress done = prefetcher.wait();
  EXPECT_TRUE(done.finished);
  EXPECT_FALSE(done.cancelled);
  EXPECT_LE(done.populated_bytes, 4096u);  // at most the step before the release
  EXPECT_EQ(done.populated_bytes + done.skipped_bytes, done.total_bytes);
}

TEST(Prefetcher, MakesNoPrivateCopiesOfACopyOnWriteMapping) {
  const Fixture fx({"a", "b", "c", "d"});
  const LoadedModel loaded = fx.load_all(/*writable=*/true);
  ASSERT_FALSE(loaded.tensors.front().writable.empty()) << "expected copy-on-write mappings";
  fx.evict();
  Prefetcher prefetcher(loaded);
  prefetcher.wait();
  // Written pages of a copy-on-write mapping leave the page cache's bytes behind; read-only
  // faults keep them shared, so the mapping still reads what the file holds and a write to
  // the file would show through (no private copy was made).
  const int fd = ::open(fx.path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  const TensorInfo* info = fx.model.find("b");
  const std::byte marker{0x5a};
  ASSERT_EQ(::pwrite(fd, &marker, 1, static_cast<off_t>(info->offset)), 1);
  ::close(fd);
  EXPECT_EQ(loaded.find("b")->bytes[0], marker);
}

TEST(Prefetcher, AFileTruncatedUnderTheMappingIsAnErrorNotSigbus) {
  const Fixture fx({"a", "b", "c", "d"});
  const LoadedModel loaded = fx.load_all();
  fx.evict();
  ASSERT_EQ(::truncate(fx.path.c_str(), static_cast<off_t>(fx.model.find("b")->offset)), 0);
  Prefetcher prefetcher(loaded);
  try {
    prefetcher.wait();
    FAIL() << "expected an error";
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::io);
    EXPECT_NE(std::string(error.what()).find(fx.path), std::string::npos) << error.what();
  }
  const PrefetchProgress after = prefetcher.progress();
  EXPECT_TRUE(after.finished);
  EXPECT_NE(after.error, "");
}

TEST(Prefetcher, ARefusedStepSizeIsAnError) {
  const Fixture fx({"a"});
  const LoadedModel loaded = fx.load_all();
  PrefetchOptions options;
  options.step_bytes = 0;
  EXPECT_THROW(Prefetcher(loaded, options), Error);
}

}  // namespace
}  // namespace weightmap
