// Fault safety: a file truncated after it was mapped gives SIGBUS on the lost pages; every
// read weightmap makes of a mapping (checksum, prefetch/populate, copy) turns that into an
// Error naming the file, the tensor and the byte, and the process lives on. Reads outside a
// guard still die, as they would without weightmap.
#include "weightmap/fault_guard.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "cli/tensor_checksum.hpp"
#include "io/page_cache.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/cache_policy.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"
#include "weightmap/model_page_cache.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define WEIGHTMAP_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEIGHTMAP_TEST_ASAN 1
#endif
#endif

namespace weightmap {
namespace {

using testing::SafetensorsBuilder;
using testing::TempDir;

constexpr std::uint64_t kBigElements = 64 * 1024;  // 256 KiB of f32: 64 pages
constexpr std::uint64_t kCutInsideBig = 10000;     // the file ends this far into "big"

// Reads every byte (a hash the compiler cannot drop).
void touch(std::span<const std::byte> bytes) {
  volatile std::uint64_t sink = cli::hash_bytes(bytes);
  static_cast<void>(sink);
}

std::uint64_t round_up_to_page(std::uint64_t n) {
  const std::uint64_t page = io::page_size();
  return (n + page - 1) / page * page;
}

// A model "a" (64 bytes), "big" (256 KiB), "tail" (64 bytes), loaded mapped, whose file is
// then truncated kCutInsideBig bytes into "big": "a" stays readable, the pages of "big" past
// the cut and all of "tail" are gone.
class TruncatedWhileMapped : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_ / "model.safetensors";
    SafetensorsBuilder builder;
    builder.add("a", "F32", {16}).add("big", "F32", {kBigElements}).add("tail", "F32", {16});
    testing::write_file(path_, builder.bytes());
    model_ = open_model(path_);
    std::vector<TensorRequest> requests;
    for (const TensorInfo& tensor : model_.tensors()) {
      TensorRequest request;
      request.name = tensor.name;
      request.device.alignment = 4;
      requests.push_back(request);
    }
    LoadOptions options;
    options.cache_from_env = false;
    loaded_ = load(model_, requests, options);
    for (const TensorStorage& tensor : loaded_.tensors) ASSERT_TRUE(tensor.mapped);
    cut_ = model_.find("big")->offset + kCutInsideBig;
    ASSERT_EQ(::truncate(path_.c_str(), static_cast<off_t>(cut_)), 0) << std::strerror(errno);
  }

  const TensorStorage& tensor(std::string_view name) const { return *loaded_.find(name); }
  const TensorInfo& info(std::string_view name) const { return *model_.find(name); }

  // The exact text every guarded path gives for a fault at file byte `at`.
  std::string truncated_error(std::string_view tensor_name, std::uint64_t at) const {
    return fmt::format(
        "{}: the file was truncated to {} bytes after it was mapped, so reading the mapping "
        "failed (SIGBUS); open the model again (tensor {}, byte {})",
        path_, cut_, tensor_name, at);
  }
  std::string truncated_error(std::uint64_t at) const {
    return fmt::format(
        "{}: the file was truncated to {} bytes after it was mapped, so reading the mapping "
        "failed (SIGBUS); open the model again (byte {})",
        path_, cut_, at);
  }

  TempDir dir_;
  std::string path_;
  Model model_;
  LoadedModel loaded_;
  std::uint64_t cut_ = 0;
};

TEST_F(TruncatedWhileMapped, ChecksumThrowsNamingTheTensorAndTheFirstLostByte) {
  cli::TensorChecksum checksum;
  try {
    checksum.add(tensor("big"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    // Reading runs forward, so the first byte lost is the first byte of the first page wholly
    // past the new end (the page holding the end reads as zeros past it).
    EXPECT_EQ(std::string(e.what()), truncated_error("big", round_up_to_page(cut_)));
  }
}

TEST_F(TruncatedWhileMapped, ATensorWhollyPastTheEndFaultsAtItsFirstByte) {
  cli::TensorChecksum checksum;
  try {
    checksum.add(tensor("tail"));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), truncated_error("tail", info("tail").offset));
  }
}

TEST_F(TruncatedWhileMapped, TensorsBeforeTheCutStillRead) {
  cli::TensorChecksum guarded;
  cli::TensorChecksum plain;
  guarded.add(tensor("a"));
  plain.add(tensor("a").bytes);
  EXPECT_EQ(guarded.value(), plain.value());
}

TEST_F(TruncatedWhileMapped, PopulateThrowsNamingTheFirstLostPage) {
  const TensorInfo& big = info("big");
  try {
    tensor("big").mapping->populate_read(big.offset, big.nbytes);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(std::string(e.what()), truncated_error(round_up_to_page(cut_)));
  }
}

TEST_F(TruncatedWhileMapped, CachePrefetchThrowsNamingTheTensor) {
  try {
    prefetch_into_page_cache(model_);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), truncated_error("big", round_up_to_page(cut_)));
  }
}

TEST_F(TruncatedWhileMapped, GuardedCopyThrowsAndLeavesTheBytesBeforeTheFault) {
  const TensorInfo& big = info("big");
  std::vector<std::byte> copy(big.nbytes);
  try {
    guarded_copy(copy.data(), *tensor("big").mapping, big.offset, big.nbytes, "big");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.tensor(), "big");
    ASSERT_TRUE(e.offset().has_value());
    // memcpy may copy in any order within its blocks: the byte is on the first lost page.
    EXPECT_GE(*e.offset(), round_up_to_page(cut_));
    EXPECT_LT(*e.offset(), round_up_to_page(cut_) + io::page_size());
  }
}

TEST_F(TruncatedWhileMapped, TheGuardNamesAHostileTensorNameThroughPrintable) {
  const TensorInfo& big = info("big");
  try {
    guarded_read(*tensor("big").mapping, big.offset, big.nbytes, "evil\x1b[2J",
                 [&] { touch(tensor("big").bytes); });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.tensor(), "evil\\x1b[2J");
  }
}

TEST_F(TruncatedWhileMapped, EveryThreadGetsItsOwnError) {
  std::atomic<int> errors{0};
  std::atomic<int> good_reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        cli::TensorChecksum checksum;
        try {
          checksum.add(tensor(t % 2 == 0 ? "big" : "a"));
          ++good_reads;
        } catch (const Error& e) {
          if (e.tensor() == "big" && e.offset() == round_up_to_page(cut_)) ++errors;
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(errors.load(), 40);
  EXPECT_EQ(good_reads.load(), 40);
}

TEST_F(TruncatedWhileMapped, AnEnclosingGuardCatchesAFaultOutsideTheInnerRange) {
  const TensorInfo& big = info("big");
  const MappedFile& file = *tensor("big").mapping;
  const TensorInfo& a = info("a");
  try {
    guarded_read(file, big.offset, big.nbytes, "big", [&] {
      guarded_read(file, a.offset, a.nbytes, "a", [&] { touch(tensor("big").bytes); });
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.tensor(), "big");
  }
  // Both guards are gone: the same read guarded again still throws, with the inner name.
  EXPECT_THROW(
      guarded_read(file, big.offset, big.nbytes, "big2", [&] { touch(tensor("big").bytes); }),
      Error);
}

TEST_F(TruncatedWhileMapped, AThrowingBodyPropagatesAndPopsTheGuard) {
  const TensorInfo& a = info("a");
  EXPECT_THROW(guarded_read(*tensor("a").mapping, a.offset, a.nbytes, "a",
                            [] { throw std::runtime_error("body"); }),
               std::runtime_error);
}

// A read of a lost page outside any guard is not swallowed: it dies of SIGBUS as it would
// without weightmap (the handler chains to the default action). Under AddressSanitizer the
// chained handler is ASan's (handle_sigbus), which reports and exits instead.
TEST_F(TruncatedWhileMapped, AnUnguardedReadStillDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const auto read_unguarded = [&] {
    // Install the handler first, and leave a guard by a throw, as real code would.
    try {
      guarded_read(tensor("a").bytes, {}, [] { throw std::runtime_error("body"); });
    } catch (const std::runtime_error&) {
    }
    touch(tensor("big").bytes);
  };
#ifdef WEIGHTMAP_TEST_ASAN
  EXPECT_DEATH(read_unguarded(), "");
#else
  EXPECT_EXIT(read_unguarded(), ::testing::KilledBySignal(SIGBUS), "");
#endif
}

TEST_F(TruncatedWhileMapped, ASentSigbusIsNotTakenForAFault) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // kill()/raise() carry no faulting address (si_code <= 0): even inside a guard the signal
  // goes to the default action.
  const TensorInfo& big = info("big");
  const auto raise_inside_guard = [&] {
    guarded_read(*tensor("big").mapping, big.offset, big.nbytes, "big", [] { ::raise(SIGBUS); });
  };
#ifdef WEIGHTMAP_TEST_ASAN
  EXPECT_DEATH(raise_inside_guard(), "");
#else
  EXPECT_EXIT(raise_inside_guard(), ::testing::KilledBySignal(SIGBUS), "");
#endif
}

TEST(FaultGuardTest, IOErrorsFromABlockDeviceOrFuse) {
  // A real I/O error under a mapping needs a filesystem that fails on purpose: a FUSE server
  // (no libfuse here) or a loop/device-mapper "error" device (needs root, losetup, dm-mod and
  // a mount). Tests do not mount filesystems; truncation above takes the same SIGBUS path.
  GTEST_SKIP() << "needs a FUSE server or a device-mapper error target (mounting as root); the "
                  "truncation tests cover the same SIGBUS path";
}

TEST(FaultGuardTest, OffsetInMappingRejectsBytesElsewhere) {
  const TempDir dir;
  const std::string path = dir / "x.bin";
  testing::write_file(path, std::string(100, 'x'));
  const auto file = MappedFile::open(path, Access::read_only);
  EXPECT_EQ(offset_in_mapping(*file, file->span(10, 5)), 10u);
  const std::byte elsewhere[4] = {};
  EXPECT_THROW(offset_in_mapping(*file, elsewhere), Error);
}

}  // namespace
}  // namespace weightmap
