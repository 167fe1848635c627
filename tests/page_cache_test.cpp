// Page-cache policy: WEIGHTMAP_MMAP_FLAGS, prefaulting copy-on-write mappings for reading
// only, one mapping per file released with its last handle, eviction, residency, mlock.
#include "io/page_cache.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/page_cache_drop.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model_page_cache.hpp"

namespace weightmap {
namespace {

using testing::SafetensorsBuilder;
using testing::TempDir;

constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

// Sets an environment variable for one test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value, 1);
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CachePolicyTest, ParsesEveryWord) {
  std::vector<std::string> warnings;
  const CachePolicy policy =
      CachePolicy::parse(" sequential,willneed , populate,dontneed,hugepage,random,,", &warnings);
  EXPECT_TRUE(warnings.empty());
  EXPECT_TRUE(policy.sequential && policy.willneed && policy.populate &&
              policy.dontneed_on_release && policy.hugepage && policy.random);
  EXPECT_FALSE(policy.mlock);
  EXPECT_EQ(policy.to_string(), "sequential,random,willneed,populate,dontneed,hugepage");
}

TEST(CachePolicyTest, AllOffByDefault) {
  EXPECT_EQ(CachePolicy{}, CachePolicy::parse(""));
  EXPECT_EQ(CachePolicy{}.to_string(), "");
}

TEST(CachePolicyTest, AnUnknownWordIsAWarningThatNamesIt) {
  std::vector<std::string> warnings;
  const CachePolicy policy = CachePolicy::parse("populate,prefetch", &warnings);
  EXPECT_TRUE(policy.populate);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_EQ(warnings[0],
            "WEIGHTMAP_MMAP_FLAGS: unknown word \"prefetch\" ignored (known: sequential, "
            "willneed, populate, dontneed, hugepage, random, mlock)");
}

TEST(CachePolicyTest, FromEnvReadsTheVariable) {
  {
    const ScopedEnv env("WEIGHTMAP_MMAP_FLAGS", "dontneed,mlock");
    const CachePolicy policy = CachePolicy::from_env();
    EXPECT_TRUE(policy.dontneed_on_release);
    EXPECT_TRUE(policy.mlock);
    EXPECT_FALSE(policy.populate);
  }
  ::unsetenv("WEIGHTMAP_MMAP_FLAGS");
  EXPECT_EQ(CachePolicy::from_env(), CachePolicy{});
}

TEST(CachePolicyTest, MlockFailureSaysTheLimitIsTooSmall) {
  EXPECT_EQ(io::lock_failure_sentence(ENOMEM, 64 * kMiB, 8 * kMiB),
            "mlock of 65536 KiB failed: RLIMIT_MEMLOCK allows 8192 KiB; raise it (ulimit -l, or "
            "LimitMEMLOCK= for a service) or turn the mlock option off");
  EXPECT_EQ(io::lock_failure_sentence(EINVAL, 4096, RLIM_INFINITY),
            "mlock of 4 KiB failed: Invalid argument");
}

// --- files big enough to measure memory -------------------------------------------------

// Folders for these tests: the page cache of tmpfs cannot be evicted, so use the build tree
// when the system temp folder is tmpfs.
bool is_tmpfs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == 0x01021994;  // TMPFS_MAGIC
}

// A model of `mib` MiB of F32 in 1 MiB tensors.
std::string write_model(const TempDir& dir, const std::string& name, std::uint64_t mib) {
  SafetensorsBuilder builder;
  for (std::uint64_t i = 0; i < mib; ++i) builder.add("w" + std::to_string(i), "F32", {512, 512});
  const std::string path = dir / name;
  testing::write_file(path, builder.bytes());
  return path;
}

void make_cold(const std::string& path) { ASSERT_TRUE(testing::drop_from_page_cache(path)); }

std::uint64_t rss_anon_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.starts_with("RssAnon:")) {
      std::istringstream fields(line.substr(8));
      std::uint64_t kib = 0;
      fields >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

bool mapped_in_this_process(const std::string& path) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.ends_with(path)) return true;
  }
  return false;
}

std::vector<TensorRequest> request_all(const Model& model, bool writes_in_place = false) {
  std::vector<TensorRequest> out;
  for (const auto& tensor : model.tensors()) {
    TensorRequest r;
    r.name = tensor.name;
    r.device.alignment = 8;
    r.writes_in_place = writes_in_place;
    out.push_back(std::move(r));
  }
  return out;
}

LoadOptions options_with(CachePolicy cache) {
  LoadOptions options;
  options.cache = cache;
  options.cache_from_env = false;
  return options;
}

TEST(PageCacheTest, PopulateOnACopyOnWriteMappingLeavesAnonymousMemoryNearZero) {
  const TempDir dir;
  const std::string path = write_model(dir, "cow.safetensors", 64);
  const Model model = open_model(path);
  make_cold(path);
  CachePolicy cache;
  cache.populate = true;
  const auto requests = request_all(model, /*writes_in_place=*/true);
  const std::uint64_t before = rss_anon_bytes();
  const LoadedModel loaded = load(model, requests, options_with(cache));
  const std::uint64_t after = rss_anon_bytes();
  ASSERT_FALSE(loaded.tensors.empty());
  EXPECT_EQ(loaded.tensors[0].mapping->access(), Access::copy_on_write);
  EXPECT_LT(after - std::min(before, after), 8 * kMiB);
  // And it did prefault: the whole file is in memory now.
  EXPECT_GE(loaded.tensors[0].mapping->resident_bytes(0, loaded.tensors[0].mapping->size()),
            60 * kMiB);
}

TEST(PageCacheTest, PrefaultForWritingFaultsInOnlyThePagesWhollyInsideTheRange) {
  const std::size_t page = io::page_size();
  const std::size_t pages = 8;
  void* memory =
      ::mmap(nullptr, pages * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(memory, MAP_FAILED);
  auto* bytes = static_cast<std::byte*>(memory);
  // From 100 bytes into page 0 to 100 bytes into page 5: pages 1-4 are wholly inside.
  io::prefault_for_writing(bytes + 100, 5 * page);
  const std::vector<bool> resident = io::resident_pages(bytes, pages * page, "anonymous");
  for (std::size_t i = 0; i < pages; ++i) {
    EXPECT_EQ(resident[i], i >= 1 && i <= 4) << "page " << i;
  }
  // A range within one page, or empty, faults nothing in.
  io::prefault_for_writing(bytes + 6 * page + 1, page - 2);
  io::prefault_for_writing(bytes + 7 * page, 0);
  EXPECT_FALSE(io::resident_pages(bytes + 6 * page, 2 * page, "anonymous")[0]);
  EXPECT_FALSE(io::resident_pages(bytes + 6 * page, 2 * page, "anonymous")[1]);
  ::munmap(memory, pages * page);
}

TEST(PageCacheTest, PrefaultForWritingLeavesTheBytesAroundItsPagesAsTheyWere) {
  const std::size_t page = io::page_size();
  std::vector<unsigned char> buffer(6 * page);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<unsigned char>(i % 251);
  const std::vector<unsigned char> before = buffer;
  // A neighbour may be writing the partly covered pages at either end: they stay untouched.
  auto* begin = reinterpret_cast<std::byte*>(buffer.data()) + 3;
  io::prefault_for_writing(begin, buffer.size() - 3 - 5);
  const auto first = reinterpret_cast<std::uintptr_t>(begin);
  const std::uintptr_t inner_begin = (first + page - 1) / page * page;
  const std::uintptr_t inner_end = (first + buffer.size() - 8) / page * page;
  for (std::size_t i = 0; i < buffer.size(); ++i) {
    const auto at = reinterpret_cast<std::uintptr_t>(buffer.data() + i);
    if (at >= inner_begin && at < inner_end) continue;  // may hold zeros without POPULATE_WRITE
    ASSERT_EQ(buffer[i], before[i]) << "byte " << i;
  }
}

TEST(PageCacheTest, ReleasingOneComponentUnmapsItsFileWhileOthersStayMapped) {
  const TempDir dir;
  const std::string text_encoder = write_model(dir, "te.safetensors", 1);
  const std::string unet = write_model(dir, "unet.safetensors", 1);
  const Model model = open_model(std::vector<ModelSource>{{text_encoder, "te."}, {unet, "unet."}});
  const auto requests = request_all(model);
  LoadedModel loaded = load(model, requests, options_with({}));
  EXPECT_EQ(loaded.report.mapped_files, 2u);
  std::weak_ptr<MappedFile> te_mapping = loaded.find("te.w0")->mapping;
  ASSERT_TRUE(mapped_in_this_process(text_encoder));
  ASSERT_TRUE(mapped_in_this_process(unet));

  loaded.release("te.");
  EXPECT_TRUE(te_mapping.expired());
  EXPECT_FALSE(mapped_in_this_process(text_encoder));
  EXPECT_TRUE(mapped_in_this_process(unet));
  EXPECT_NE(loaded.find("unet.w0"), nullptr);
}

TEST(PageCacheTest, TwoLoadsOfOneFileShareOneReadOnlyMapping) {
  const TempDir dir;
  const std::string path = write_model(dir, "shared.safetensors", 1);
  const Model model = open_model(path);
  const auto requests = request_all(model);
  const LoadedModel first = load(model, requests, options_with({}));
  const LoadedModel second = load(model, requests, options_with({}));
  EXPECT_EQ(first.tensors[0].bytes.data(), second.tensors[0].bytes.data());
  // Copy-on-write mappings are never shared: patches of one must not show in the other.
  const auto writable = request_all(model, true);
  const LoadedModel patched = load(model, writable, options_with({}));
  EXPECT_NE(patched.tensors[0].bytes.data(), first.tensors[0].bytes.data());
}

TEST(PageCacheTest, ResidencyOfAFileEndingInsideAPageCountsOnlyTheBytesItHolds) {
  const TempDir dir;
  const std::string path = dir / "small.safetensors";
  SafetensorsBuilder builder;
  builder.add("a", "F32", {100});
  testing::write_file(path, builder.bytes());  // a few hundred bytes: part of one page
  const Model model = open_model(path);
  const auto requests = request_all(model);
  const LoadedModel loaded = load(model, requests, options_with({}));
  volatile std::byte touched = loaded.tensors[0].bytes[0];  // now in the page cache
  static_cast<void>(touched);
  const Residency residency = page_cache_residency(model);
  EXPECT_EQ(residency.resident_bytes, residency.tensor_bytes);
  EXPECT_LE(residency.tensor_bytes, std::filesystem::file_size(path));
}

TEST(PageCacheTest, ResidencyFollowsPopulateAndEviction) {
  const TempDir dir;
  if (is_tmpfs(dir.path().string())) GTEST_SKIP() << "tmpfs: the page cache cannot be evicted";
  const std::string path = write_model(dir, "r.safetensors", 8);
  const Model model = open_model(path);
  make_cold(path);
  const Residency cold = page_cache_residency(model);
  ASSERT_EQ(cold.files.size(), 1u);
  EXPECT_GE(cold.tensor_bytes, 8 * kMiB);
  if (cold.resident_bytes > kMiB) GTEST_SKIP() << "this filesystem keeps evicted pages cached";
  CachePolicy cache;
  cache.populate = true;
  cache.dontneed_on_release = true;
  const auto requests = request_all(model);
  {
    const LoadedModel loaded = load(model, requests, options_with(cache));
    EXPECT_GE(page_cache_residency(model).resident_bytes, 8 * kMiB);
  }
  EXPECT_LT(page_cache_residency(model).resident_bytes, kMiB);
}

TEST(PageCacheTest, TensorsAddUpToTheirFilesAndASharedPageCountsOnce) {
  const TempDir dir;
  const std::string path = dir / "shared.safetensors";
  SafetensorsBuilder builder;
  builder.add("a", "F32", {100});  // a, b and the start of c share the file's first page
  builder.add("b", "F32", {100});
  builder.add("c", "F32", {512, 512});
  testing::write_file(path, builder.bytes());
  const Model model = open_model(path);
  prefetch_into_page_cache(model);
  const Residency residency = page_cache_residency(model);
  ASSERT_EQ(residency.tensor_resident_bytes.size(), model.tensors().size());
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < model.tensors().size(); ++i) {
    EXPECT_EQ(residency.tensor_resident_bytes[i], model.tensors()[i].nbytes) << i;
    sum += residency.tensor_resident_bytes[i];
  }
  ASSERT_EQ(residency.files.size(), 1u);
  EXPECT_EQ(residency.files[0].resident_bytes, sum);
  EXPECT_EQ(residency.files[0].tensor_bytes, sum);
  EXPECT_EQ(residency.resident_bytes, sum);
}

TEST(PageCacheTest, PrefetchReadsEveryTensorInAndEvictDropsIt) {
  const TempDir dir;
  if (is_tmpfs(dir.path().string())) GTEST_SKIP() << "tmpfs: the page cache cannot be evicted";
  const std::string path = write_model(dir, "p.safetensors", 8);
  const Model model = open_model(path);
  evict_from_page_cache(model);
  if (page_cache_residency(model).resident_bytes > kMiB) {
    GTEST_SKIP() << "this filesystem keeps evicted pages cached";
  }
  std::uint64_t last_done = 0;
  std::uint64_t last_total = 0;
  prefetch_into_page_cache(model, [&](std::uint64_t done, std::uint64_t total) {
    EXPECT_GE(done, last_done);
    last_done = done;
    last_total = total;
  });
  EXPECT_EQ(last_done, last_total);
  EXPECT_GE(last_total, 8 * kMiB);
  const Residency warm = page_cache_residency(model);
  EXPECT_EQ(warm.resident_bytes, warm.tensor_bytes);
  evict_from_page_cache(model);
  EXPECT_LT(page_cache_residency(model).resident_bytes, kMiB);
}

TEST(PageCacheTest, EvictingTheFirstModelKeepsThePageCacheBelowTheLargerModelPlusStaging) {
  const TempDir dir;
  if (is_tmpfs(dir.path().string())) {
    GTEST_SKIP() << "the temp folder is tmpfs, whose pages posix_fadvise cannot evict";
  }
  const std::string first_path = write_model(dir, "first.safetensors", 64);
  const std::string second_path = write_model(dir, "second.safetensors", 64);
  const Model first = open_model(first_path);
  const Model second = open_model(second_path);
  make_cold(first_path);
  make_cold(second_path);
  if (page_cache_residency(first).resident_bytes > 4 * kMiB) {
    GTEST_SKIP() << "this filesystem keeps pages cached after POSIX_FADV_DONTNEED";
  }

  CachePolicy cache;
  cache.populate = true;
  cache.dontneed_on_release = true;
  LoadOptions options = options_with(cache);
  options.staging_bytes_cap = 4 * kMiB;
  {
    const auto requests = request_all(first);
    const LoadedModel loaded = load(first, requests, options);
    EXPECT_GE(page_cache_residency(first).resident_bytes, 60 * kMiB);
  }  // released: evicted
  const auto requests = request_all(second);
  const LoadedModel loaded = load(second, requests, options);
  const std::uint64_t cached =
      page_cache_residency(first).resident_bytes + page_cache_residency(second).resident_bytes;
  EXPECT_LT(cached, 64 * kMiB + options.staging_bytes_cap + kMiB);
  EXPECT_GE(page_cache_residency(second).resident_bytes, 60 * kMiB);
}

TEST(PageCacheTest, CopiedTensorsLeaveNoSecondCopyInThePageCacheWithDontneed) {
  const TempDir dir;
  if (is_tmpfs(dir.path().string())) GTEST_SKIP() << "tmpfs: the page cache cannot be evicted";
  const std::string path = write_model(dir, "copied.safetensors", 16);
  const Model model = open_model(path);
  make_cold(path);
  CachePolicy cache;
  cache.dontneed_on_release = true;
  LoadOptions options = options_with(cache);
  options.mode = weightmap::LoadMode::read;
  const auto requests = request_all(model);
  const LoadedModel loaded = load(model, requests, options);
  EXPECT_EQ(loaded.report.loaded_tensors, 16u);
  EXPECT_LT(page_cache_residency(model).resident_bytes, 2 * kMiB)
      << page_cache_residency(model).resident_bytes;
}

TEST(PageCacheTest, LoadAppliesTheEnvironmentFlagsAndWarnsOnAnUnknownWord) {
  const TempDir dir;
  const std::string path = write_model(dir, "env.safetensors", 1);
  const Model model = open_model(path);
  const ScopedEnv env("WEIGHTMAP_MMAP_FLAGS", "willneed,sequential,turbo");
  std::vector<std::string> warnings;
  LoadOptions options;
  options.log = [&](LogLevel level, std::string_view line) {
    if (level == LogLevel::warning) warnings.emplace_back(line);
  };
  const auto requests = request_all(model);
  const LoadedModel loaded = load(model, requests, options);
  EXPECT_TRUE(loaded.report.cache.willneed);
  EXPECT_TRUE(loaded.report.cache.sequential);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("unknown word \"turbo\""), std::string::npos);
  EXPECT_EQ(loaded.report.notes, warnings);
}

TEST(PageCacheTest, MlockLocksTheTensorsOrSaysWhyNot) {
  const TempDir dir;
  const std::string path = write_model(dir, "locked.safetensors", 2);
  const Model model = open_model(path);
  CachePolicy cache;
  cache.mlock = true;
  const auto requests = request_all(model);
  const LoadedModel loaded = load(model, requests, options_with(cache));
  for (const auto& note : loaded.report.notes) {
    EXPECT_NE(note.find("tensors not locked in memory: "), std::string::npos) << note;
  }
  EXPECT_EQ(loaded.report.mapped_tensors, 2u);
}

}  // namespace
}  // namespace weightmap
