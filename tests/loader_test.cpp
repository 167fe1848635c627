// load(): mapped views, loaded and converted buffers, workers, truncation, cancellation,
// the report and its log lines.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "io/aligned_buffer.hpp"
#include "io/file_reader.hpp"
#include "load/copy_workers.hpp"
#include "support/safetensors_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/convert.hpp"
#include "weightmap/error.hpp"
#include "weightmap/load.hpp"

namespace weightmap {
namespace {

using testing::Bytes;
using testing::SafetensorsBuilder;
using testing::TempDir;

// A safetensors file whose data bytes follow a pattern that differs at every position, so a
// wrong offset or a swapped chunk shows.
Bytes patterned_file(const SafetensorsBuilder& builder) {
  const std::string header = builder.header();
  std::uint64_t data_bytes = 0;
  for (const auto& tensor : builder.tensors) data_bytes += testing::spec_bytes(tensor);
  Bytes data(data_bytes);
  for (std::uint64_t i = 0; i < data_bytes; ++i) {
    data[i] = static_cast<std::byte>((i * 131 + i / 251) % 256);
  }
  return testing::safetensors_file(header.size(), header, data);
}

struct Fixture {
  TempDir dir;
  std::string path;
  Bytes bytes;
  Model model;

  explicit Fixture(const SafetensorsBuilder& builder, std::string name = "model.safetensors")
      : path(dir / name), bytes(patterned_file(builder)) {
    testing::write_file(path, bytes);
    model = open_model(path);
  }

  std::span<const std::byte> file_bytes(std::string_view tensor) const {
    const TensorInfo* info = model.find(tensor);
    return std::span(bytes).subspan(info->offset, info->nbytes);
  }
};

// safetensors aligns tensor data to 8 bytes only; these tests are not about alignment.
TensorRequest request(std::string name) {
  TensorRequest r;
  r.name = std::move(name);
  r.device.alignment = 2;
  return r;
}

std::vector<TensorRequest> request_all(const Model& model) {
  std::vector<TensorRequest> out;
  for (const auto& tensor : model.tensors()) out.push_back(request(tensor.name));
  return out;
}

bool same(std::span<const std::byte> a, std::span<const std::byte> b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size()) == 0;
}

LoadOptions quiet_options() {
  LoadOptions options;
  options.cache_from_env = false;  // the tests choose every flag themselves
  return options;
}

SafetensorsBuilder three_tensors() {
  SafetensorsBuilder builder;
  builder.add("a", "F32", {4, 4}).add("b", "F16", {1000}).add("c", "BF16", {3, 5});
  return builder;
}

TEST(LoaderTest, MappedTensorsAreViewsOfTheFileBytes) {
  const Fixture fx(three_tensors());
  const auto requests = request_all(fx.model);
  const LoadedModel loaded = load(fx.model, requests, quiet_options());
  ASSERT_EQ(loaded.tensors.size(), 3u);
  for (const auto& storage : loaded.tensors) {
    EXPECT_TRUE(storage.mapped) << storage.name;
    EXPECT_FALSE(storage.reason);
    EXPECT_TRUE(storage.mapping != nullptr);
    EXPECT_TRUE(storage.writable.empty());  // read-only shared mapping
    EXPECT_TRUE(same(storage.bytes, fx.file_bytes(storage.name))) << storage.name;
  }
  EXPECT_EQ(loaded.report.mapped_tensors, 3u);
  EXPECT_EQ(loaded.report.mapped_files, 1u);
  EXPECT_EQ(loaded.report.loaded_tensors, 0u);
}

TEST(LoaderTest, LoadedTensorsHoldTheFileBytesAlignedAsAsked) {
  const Fixture fx(three_tensors());
  auto requests = request_all(fx.model);
  for (auto& r : requests) r.device.alignment = 256;
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  const LoadedModel loaded = load(fx.model, requests, options);
  for (const auto& storage : loaded.tensors) {
    EXPECT_FALSE(storage.mapped);
    EXPECT_EQ(storage.reason, Reason::mapping_disabled);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(storage.bytes.data()) % 256, 0u);
    EXPECT_EQ(storage.writable.data(), storage.bytes.data());
    EXPECT_TRUE(same(storage.bytes, fx.file_bytes(storage.name))) << storage.name;
  }
  EXPECT_EQ(loaded.report.loaded_tensors, 3u);
  EXPECT_EQ(loaded.report.reasons.at(Reason::mapping_disabled), 3u);
  EXPECT_EQ(loaded.report.converted_tensors, 0u);
}

// What convert() makes of the tensor's file bytes, in one call.
Bytes converted(std::span<const std::byte> src, DType from, DType to, std::uint64_t elements) {
  Bytes out(*dtype_bytes_for(to, elements));
  convert(from, src, to, out, elements);
  return out;
}

TEST(LoaderTest, ConvertsToTheRequestedType) {
  const Fixture fx(three_tensors());
  std::vector<TensorRequest> requests = {request("b"), request("c")};
  requests[0].dtype = DType::F32;
  requests[1].dtype = DType::F32;
  const LoadedModel loaded = load(fx.model, requests, quiet_options());
  EXPECT_EQ(loaded.tensors[0].dtype, DType::F32);
  EXPECT_EQ(loaded.tensors[0].reason, Reason::dtype_differs);
  EXPECT_TRUE(
      same(loaded.tensors[0].bytes, converted(fx.file_bytes("b"), DType::F16, DType::F32, 1000)));
  EXPECT_TRUE(
      same(loaded.tensors[1].bytes, converted(fx.file_bytes("c"), DType::BF16, DType::F32, 15)));
  EXPECT_EQ(loaded.report.converted_tensors, 2u);
  EXPECT_EQ(loaded.report.loaded_bytes, 4000u + 60u);
}

TEST(LoaderTest, ATensorLargerThanTheStagingShareIsConvertedInChunks) {
  SafetensorsBuilder builder;
  builder.add("big", "F16", {1024, 700});  // 1.4 MB of f16 against 256 KiB of staging
  const Fixture fx(builder);
  std::vector<TensorRequest> requests = {request("big")};
  requests[0].dtype = DType::F32;
  LoadOptions options = quiet_options();
  options.workers = 1;
  options.staging_bytes_cap = loader::kMinStagingPerWorker;
  const LoadedModel loaded = load(fx.model, requests, options);
  EXPECT_TRUE(same(loaded.tensors[0].bytes,
                   converted(fx.file_bytes("big"), DType::F16, DType::F32, 1024 * 700)));
  EXPECT_LE(loaded.report.peak_staging_bytes, loader::kMinStagingPerWorker);
}

TEST(LoaderTest, ATensorLargerThanAWorkersStagingShareIsSplitAcrossWorkers) {
  SafetensorsBuilder builder;
  // 3 MiB of f16 against 512 KiB staging shares: six pieces, so two workers run on the one
  // tensor (converting, each piece is one share of f16 read, two of f32 written).
  builder.add("big", "F16", {1536, 1024});
  const Fixture fx(builder);
  const std::uint64_t elements = 1536 * 1024;
  const Bytes as_f32 = converted(fx.file_bytes("big"), DType::F16, DType::F32, elements);
  for (const bool direct : {false, true}) {
    for (const std::optional<DType> dtype : {std::optional<DType>(), std::optional(DType::F32)}) {
      std::vector<TensorRequest> requests = {request("big")};
      requests[0].dtype = dtype;
      LoadOptions options = quiet_options();
      options.mode = direct ? LoadMode::direct : LoadMode::read;
      options.workers = 2;
      options.staging_bytes_cap = std::size_t{1} << 20;
      std::vector<LoadProgress> seen;
      options.progress = [&](const LoadProgress& progress) {
        seen.push_back(progress);
        return true;
      };
      const LoadedModel loaded = load(fx.model, requests, options);
      SCOPED_TRACE(fmt::format("direct {}, to {}", direct, dtype ? "f32" : "f16"));
      EXPECT_EQ(loaded.report.workers, 2u);
      EXPECT_TRUE(same(loaded.tensors[0].bytes,
                       dtype ? std::span<const std::byte>(as_f32) : fx.file_bytes("big")));
      ASSERT_FALSE(seen.empty());
      // The tensor counts as done once, when its last piece is.
      EXPECT_EQ(seen.back().tensors_done, 1u);
      EXPECT_EQ(seen.back().bytes_done, elements * 2);
      EXPECT_EQ(std::count_if(seen.begin(), seen.end(),
                              [](const LoadProgress& p) { return p.tensors_done == 1; }),
                1);
    }
  }
}

TEST(LoaderTest, TheHugepageFlagGivesBigBuffersHugePageAlignment) {
  SafetensorsBuilder builder;
  builder.add("big", "F16", {1536, 1024}).add("small", "F32", {100});
  const Fixture fx(builder);
  auto requests = request_all(fx.model);
  requests[0].dtype = DType::F32;  // 6 MiB of f32
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  options.cache.hugepage = true;
  const LoadedModel loaded = load(fx.model, requests, options);
  const auto address = reinterpret_cast<std::uintptr_t>(loaded.tensors[0].bytes.data());
  EXPECT_EQ(address % io::kHugePageBytes, 0u);
  EXPECT_TRUE(same(loaded.tensors[0].bytes,
                   converted(fx.file_bytes("big"), DType::F16, DType::F32, 1536 * 1024)));
  EXPECT_TRUE(same(loaded.tensors[1].bytes, fx.file_bytes("small")));
}

TEST(LoaderTest, DirectIoGivesTheSameBytes) {
  SafetensorsBuilder builder;
  builder.add("x", "F32", {3, 1000}).add("y", "F16", {5000}).add("z", "U8", {7});
  const Fixture fx(builder);
  auto requests = request_all(fx.model);
  requests[1].dtype = DType::F32;
  LoadOptions options = quiet_options();
  options.mode = LoadMode::direct;
  options.staging_bytes_cap = loader::kMinStagingPerWorker;
  options.workers = 1;
  const LoadedModel loaded = load(fx.model, requests, options);
  EXPECT_TRUE(same(loaded.tensors[0].bytes, fx.file_bytes("x")));
  EXPECT_TRUE(
      same(loaded.tensors[1].bytes, converted(fx.file_bytes("y"), DType::F16, DType::F32, 5000)));
  EXPECT_TRUE(same(loaded.tensors[2].bytes, fx.file_bytes("z")));
}

TEST(LoaderTest, ACallersDestinationIsFilled) {
  const Fixture fx(three_tensors());
  std::vector<std::byte> buffer(2000);
  TensorRequest r = request("b");
  r.destination = buffer.data();
  r.destination_size = buffer.size();
  const LoadedModel loaded = load(fx.model, std::span(&r, 1), quiet_options());
  EXPECT_EQ(loaded.tensors[0].bytes.data(), buffer.data());
  EXPECT_EQ(loaded.tensors[0].buffer, nullptr);
  EXPECT_TRUE(same(std::span(buffer), fx.file_bytes("b")));
}

TEST(LoaderTest, OneTwoAndEightWorkersGiveIdenticalBytes) {
  SafetensorsBuilder builder;
  for (int i = 0; i < 40; ++i) {
    builder.add("t" + std::to_string(i), i % 3 == 0 ? "F16" : "F32",
                {static_cast<std::uint64_t>(1000 + 37 * i), 3});
  }
  const Fixture fx(builder);
  auto requests = request_all(fx.model);
  for (std::size_t i = 0; i < requests.size(); i += 3) requests[i].dtype = DType::F32;
  for (std::size_t i = 1; i < requests.size(); i += 3) requests[i].dtype = DType::BF16;
  std::vector<Bytes> results;
  for (const unsigned workers : {1U, 2U, 8U}) {
    LoadOptions options = quiet_options();
    options.mode = weightmap::LoadMode::read;
    options.workers = workers;
    const LoadedModel loaded = load(fx.model, requests, options);
    Bytes all;
    for (const auto& storage : loaded.tensors) {
      all.insert(all.end(), storage.bytes.begin(), storage.bytes.end());
    }
    results.push_back(std::move(all));
    EXPECT_EQ(loaded.report.workers, workers);
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[0], results[2]);
}

TEST(LoaderTest, EveryByteOfEveryTensorIsCopiedOnceWithSeveralWorkersAndPieces) {
  // Odd sizes, so piece and page boundaries fall inside elements' neighbourhoods, and one
  // tensor (1.5 MiB of f16) larger than every worker's piece (the 1 MiB cap split among them).
  SafetensorsBuilder builder;
  builder.add("odd_u8", "U8", {4099})
      .add("big", "F16", {3, 262147})
      .add("tiny", "F16", {1})
      .add("odd_f32", "F32", {7, 1031})
      .add("odd_f16", "F16", {12289});
  const Fixture fx(builder);
  std::uint64_t total = 0;
  for (const auto& tensor : fx.model.tensors()) total += tensor.nbytes;
  for (const bool direct : {false, true}) {
    for (const bool to_f32 : {false, true}) {
      for (const unsigned workers : {2U, 3U}) {
        SCOPED_TRACE(fmt::format("direct {}, to f32 {}, {} workers", direct, to_f32, workers));
        auto requests = request_all(fx.model);
        if (to_f32) {
          for (auto& r : requests) {
            if (r.name != "odd_u8") r.dtype = DType::F32;
          }
        }
        LoadOptions options = quiet_options();
        options.mode = direct ? LoadMode::direct : LoadMode::read;
        options.workers = workers;
        options.staging_bytes_cap = std::size_t{1} << 20;
        std::mutex mutex;
        std::uint64_t last_bytes = 0;
        LoadProgress last;
        bool monotonic = true;
        options.progress = [&](const LoadProgress& progress) {
          std::lock_guard lock(mutex);
          monotonic = monotonic && progress.bytes_done > last_bytes;
          last_bytes = progress.bytes_done;
          last = progress;
          return true;
        };
        const LoadedModel loaded = load(fx.model, requests, options);
        EXPECT_EQ(loaded.report.workers, workers);
        for (std::size_t i = 0; i < requests.size(); ++i) {
          const TensorInfo& info = *fx.model.find(requests[i].name);
          const auto expected =
              requests[i].dtype
                  ? converted(fx.file_bytes(info.name), info.dtype, *requests[i].dtype,
                              info.element_count())
                  : Bytes(fx.file_bytes(info.name).begin(), fx.file_bytes(info.name).end());
          EXPECT_TRUE(same(loaded.tensors[i].bytes, expected)) << info.name;
        }
        // Each chunk counted once: copying one twice would overshoot the total.
        EXPECT_TRUE(monotonic);
        EXPECT_EQ(last.bytes_done, total);
        EXPECT_EQ(last.tensors_done, requests.size());
      }
    }
  }
}

TEST(LoaderTest, AFileTruncatedDuringTheLoadIsAnErrorNotSigbus) {
  SafetensorsBuilder builder;
  builder.add("first", "F32", {256}).add("second", "F32", {256});
  const Fixture fx(builder);
  const std::uint64_t second_offset = fx.model.find("second")->offset;
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  options.workers = 1;
  options.progress = [&](const LoadProgress& progress) {
    if (progress.tensors_done == 1) std::filesystem::resize_file(fx.path, second_offset);
    return true;
  };
  const auto requests = request_all(fx.model);
  try {
    load(fx.model, requests, options);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::io);
    EXPECT_EQ(std::string(e.what()), fx.path +
                                         ": file became shorter while reading it (tensor "
                                         "second, byte " +
                                         std::to_string(second_offset) + ")");
  }
}

TEST(LoaderTest, AFileThatChangedSinceItWasOpenedIsAnError) {
  const Fixture fx(three_tensors());
  std::filesystem::resize_file(fx.path, fx.bytes.size() - 10);
  const auto requests = request_all(fx.model);
  for (const bool use_mmap : {true, false}) {
    LoadOptions options = quiet_options();
    options.mode = use_mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    try {
      load(fx.model, requests, options);
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::io);
      EXPECT_EQ(std::string(e.what()),
                fmt::format("{}: the file changed size since the model was opened ({} bytes, now "
                            "{}); open the model again",
                            fx.path, fx.bytes.size(), fx.bytes.size() - 10));
    }
  }
}

TEST(LoaderTest, CancelFromTheProgressCallbackStopsAndFreesBuffers) {
  SafetensorsBuilder builder;
  for (int i = 0; i < 20; ++i) builder.add("t" + std::to_string(i), "F32", {4096});
  const Fixture fx(builder);
  const auto requests = request_all(fx.model);
  const std::uint64_t live_before = io::live_buffer_bytes();
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  options.workers = 1;
  int calls = 0;
  options.progress = [&](const LoadProgress&) { return ++calls < 3; };
  try {
    load(fx.model, requests, options);
    FAIL() << "expected the load to be cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::cancelled);
    EXPECT_STREQ(e.what(), "the load was cancelled");
  }
  EXPECT_EQ(calls, 3);  // nothing was read after the callback said stop
  EXPECT_EQ(io::live_buffer_bytes(), live_before);
}

TEST(LoaderTest, CancelFromAnotherThreadsFlag) {
  const Fixture fx(three_tensors());
  const auto requests = request_all(fx.model);
  std::atomic<bool> cancel{true};
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  options.cancel = &cancel;
  try {
    load(fx.model, requests, options);
    FAIL() << "expected the load to be cancelled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::cancelled);
  }
}

TEST(LoaderTest, ProgressCountsEveryLoadedByteAndTensor) {
  const Fixture fx(three_tensors());
  const auto requests = request_all(fx.model);
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::read;
  LoadProgress last;
  options.progress = [&](const LoadProgress& progress) {
    last = progress;
    return true;
  };
  load(fx.model, requests, options);
  EXPECT_EQ(last.tensors_done, 3u);
  EXPECT_EQ(last.tensors_total, 3u);
  EXPECT_EQ(last.bytes_done, 64u + 2000u + 30u);
  EXPECT_EQ(last.bytes_total, last.bytes_done);
}

TEST(LoaderTest, ElementCountDiffersIsRefusedBeforeAnyRead) {
  const Fixture fx(three_tensors());
  TensorRequest r = request("a");
  r.shape = std::vector<std::uint64_t>{5, 3};
  try {
    load(fx.model, std::span(&r, 1), quiet_options());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              fmt::format("{}: the requested shape [5, 3] does not have the 16 elements of the "
                          "tensor's shape [4, 4] in the file (tensor a, byte {})",
                          fx.path, fx.model.find("a")->offset));
  }
}

TEST(LoaderTest, WritesInPlaceGetACopyOnWriteMappingThatNeverReachesTheFile) {
  const Fixture fx(three_tensors());
  TensorRequest r = request("a");
  r.writes_in_place = true;
  LoadedModel loaded = load(fx.model, std::span(&r, 1), quiet_options());
  TensorStorage& storage = loaded.tensors[0];
  ASSERT_TRUE(storage.mapped);
  ASSERT_EQ(storage.writable.size(), 64u);
  std::memset(storage.writable.data(), 0x5A, storage.writable.size());
  EXPECT_EQ(storage.bytes[0], std::byte{0x5A});
  const Model reopened = open_model(fx.path);
  const LoadedModel fresh = load(reopened, std::span(&r, 1), quiet_options());
  EXPECT_TRUE(same(fresh.tensors[0].bytes, fx.file_bytes("a")));  // not shared, not on disk
}

TEST(LoaderTest, ReportListsUnrequestedAndMissingOptionalTensors) {
  const Fixture fx(three_tensors());
  std::vector<TensorRequest> requests = {request("a"), request("absent")};
  requests[1].optional = true;
  const LoadedModel loaded = load(fx.model, requests, quiet_options());
  EXPECT_EQ(loaded.tensors.size(), 1u);
  EXPECT_EQ(loaded.report.unrequested, (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(loaded.report.unrequested_bytes, 2030u);
  EXPECT_EQ(loaded.report.missing_optional, (std::vector<std::string>{"absent"}));
  EXPECT_NE(loaded.find("a"), nullptr);
  EXPECT_EQ(loaded.find("absent"), nullptr);
}

TEST(LoaderTest, LogsOneInfoLineAndPerReasonDebugLines) {
  const Fixture fx(three_tensors());
  auto requests = request_all(fx.model);
  requests[1].dtype = DType::F32;
  requests[2].device.reads_host_memory = false;
  std::vector<std::pair<LogLevel, std::string>> lines;
  LoadOptions options = quiet_options();
  options.log = [&](LogLevel level, std::string_view line) {
    lines.emplace_back(level, std::string(line));
  };
  const LoadedModel loaded = load(fx.model, requests, options);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[0].first, LogLevel::info);
  EXPECT_EQ(lines[0].second, loaded.report.summary_line());
  EXPECT_TRUE(lines[0].second.starts_with(
      "memory-mapped 1 tensors in 1 files (0.0 MiB), loaded 2 tensors (0.0 MiB, 1 converted) "
      "in "))
      << lines[0].second;
  EXPECT_TRUE(lines[0].second.ends_with(" s"));
  EXPECT_EQ(lines[1], (std::pair<LogLevel, std::string>{
                          LogLevel::debug,
                          "loaded 1 tensors because the requested type differs from the type in "
                          "the file, so the tensor is converted"}));
  EXPECT_EQ(lines[2], (std::pair<LogLevel, std::string>{
                          LogLevel::debug,
                          "loaded 1 tensors because the device cannot read host memory, so it "
                          "gets a copy"}));
}

TEST(LoaderTest, SummaryLineFormat) {
  LoadReport report;
  report.mapped_tensors = 10;
  report.mapped_files = 2;
  report.mapped_bytes = std::uint64_t{3} << 20;
  report.loaded_tensors = 4;
  report.loaded_bytes = std::uint64_t{1} << 19;
  report.converted_tensors = 1;
  report.seconds = 0.25;
  EXPECT_EQ(report.summary_line(),
            "memory-mapped 10 tensors in 2 files (3.0 MiB), loaded 4 tensors (0.5 MiB, 1 "
            "converted) in 0.250 s");
}

// A PyTorch-style transposed view: the 3x2 matrix 0..5 stored row-major, read as its 2x3
// transpose through strides {1, 2}. The model is built by hand around a raw file.
TEST(LoaderTest, AStridedTensorIsGatheredInRowMajorOrder) {
  const TempDir dir;
  const std::string path = dir / "raw.pt";
  std::vector<float> stored = {0, 1, 2, 3, 4, 5};
  Bytes raw(sizeof(float) * stored.size());
  std::memcpy(raw.data(), stored.data(), raw.size());
  testing::write_file(path, raw);
  ModelFile file;
  file.path = path;
  file.format = FileFormat::pytorch_zip;
  file.size = raw.size();
  file.identity = io::FileReader(path).identity();
  TensorInfo transposed{"t", DType::F32, {2, 3}, 0, 0, 24};
  transposed.strides = {1, 2};
  const Model model({file}, {transposed}, {});

  std::vector<TensorRequest> requests = {request("t"), request("t")};
  requests[1].dtype = DType::F16;
  const LoadedModel loaded = load(model, requests, quiet_options());
  EXPECT_EQ(loaded.tensors[0].reason, Reason::format_cannot_be_mapped);
  const std::vector<float> expected = {0, 2, 4, 1, 3, 5};
  const auto expected_bytes = std::as_bytes(std::span(expected));
  EXPECT_TRUE(same(loaded.tensors[0].bytes, expected_bytes));
  EXPECT_TRUE(same(loaded.tensors[1].bytes, converted(expected_bytes, DType::F32, DType::F16, 6)));
}

TEST(LoaderTest, ZeroWorkersIsACallersMistake) {
  const Fixture fx(three_tensors());
  LoadOptions options = quiet_options();
  options.workers = 0;
  const auto requests = request_all(fx.model);
  EXPECT_THROW(load(fx.model, requests, options), Error);
}

}  // namespace
}  // namespace weightmap
