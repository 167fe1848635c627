// The auto load mode (per file and tensor: map, or pread with or without dropping pages
// behind, with the reason in the report) and sinks (a Loaded tensor streamed to the caller in
// pieces instead of a buffer).
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "io/file_facts.hpp"
#include "io/page_cache.hpp"
#include "load/copy_workers.hpp"
#include "support/page_cache_drop.hpp"
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

struct Fixture {
  TempDir dir;
  std::string path;
  Bytes bytes;
  Model model;

  explicit Fixture(const SafetensorsBuilder& builder) : path(dir / "model.safetensors") {
    const std::string header = builder.header();
    std::uint64_t data_bytes = 0;
    for (const auto& tensor : builder.tensors) data_bytes += testing::spec_bytes(tensor);
    Bytes data(data_bytes);
    for (std::uint64_t i = 0; i < data_bytes; ++i) {
      data[i] = static_cast<std::byte>((i * 29 + i / 241) % 256);
    }
    bytes = testing::safetensors_file(header.size(), header, data);
    testing::write_file(path, bytes);
    model = open_model(path);
  }

  Bytes file_bytes(std::string_view tensor) const {
    const TensorInfo* info = model.find(tensor);
    return Bytes(bytes.begin() + static_cast<std::ptrdiff_t>(info->offset),
                 bytes.begin() + static_cast<std::ptrdiff_t>(info->offset + info->nbytes));
  }
};

SafetensorsBuilder two_tensors() {
  SafetensorsBuilder builder;
  builder.add("w", "F16", {512, 300}).add("b", "F32", {300});
  return builder;
}

TensorRequest request(std::string name) {
  TensorRequest r;
  r.name = std::move(name);
  r.device.alignment = 2;
  return r;
}

LoadOptions quiet_options() {
  LoadOptions options;
  options.cache_from_env = false;
  return options;
}

// Collects what sinks receive, per tensor, checking that pieces arrive in order.
class SinkRecorder {
 public:
  TensorSink sink_for(const std::string& name) {
    return [this, name](std::span<const std::byte> piece, std::uint64_t offset) {
      const std::lock_guard lock(mutex_);
      Bytes& got = received_[name];
      EXPECT_EQ(offset, got.size()) << name << ": pieces out of order";
      got.insert(got.end(), piece.begin(), piece.end());
      ++pieces_[name];
    };
  }
  const Bytes& bytes(const std::string& name) { return received_[name]; }
  std::size_t pieces(const std::string& name) { return pieces_[name]; }

 private:
  std::mutex mutex_;
  std::map<std::string, Bytes> received_;
  std::map<std::string, std::size_t> pieces_;
};

TEST(LoadSink, StreamsEachTensorInOrderWithoutABuffer) {
  const Fixture fx(two_tensors());
  SinkRecorder recorder;
  std::vector<TensorRequest> requests = {request("w"), request("b")};
  for (auto& r : requests) {
    r.device.reads_host_memory = false;
    r.sink = recorder.sink_for(r.name);
  }
  LoadOptions options = quiet_options();
  options.staging_bytes_cap = loader::kMinStagingPerWorker;  // w (300 KiB) comes in pieces
  options.workers = 1;
  const LoadedModel loaded = load(fx.model, requests, options);
  EXPECT_EQ(recorder.bytes("w"), fx.file_bytes("w"));
  EXPECT_EQ(recorder.bytes("b"), fx.file_bytes("b"));
  EXPECT_GT(recorder.pieces("w"), 1u);
  for (const TensorStorage& storage : loaded.tensors) {
    EXPECT_FALSE(storage.mapped);
    EXPECT_TRUE(storage.bytes.empty());
    EXPECT_EQ(storage.buffer, nullptr);
    EXPECT_EQ(storage.reason, Reason::device_cannot_read_host_memory);
  }
  EXPECT_EQ(loaded.report.loaded_tensors, 2u);
  EXPECT_LE(loaded.report.peak_staging_bytes, loader::kMinStagingPerWorker);
}

TEST(LoadSink, ATensorLargerThanAShareIsNotCutAcrossWorkersForASink) {
  // Buffers get large tensors cut into pieces for every worker; a sink must get its pieces in
  // order from one thread, so its tensor stays whole.
  const Fixture fx(two_tensors());
  std::mutex mutex;
  std::set<std::thread::id> threads;
  Bytes got;
  TensorRequest r = request("w");  // 300 KiB against 256 KiB shares
  r.device.reads_host_memory = false;
  r.sink = [&](std::span<const std::byte> piece, std::uint64_t offset) {
    const std::lock_guard lock(mutex);
    threads.insert(std::this_thread::get_id());
    EXPECT_EQ(offset, got.size());
    got.insert(got.end(), piece.begin(), piece.end());
  };
  LoadOptions options = quiet_options();
  options.workers = 2;
  options.staging_bytes_cap = 2 * loader::kMinStagingPerWorker;
  (void)load(fx.model, std::span(&r, 1), options);
  EXPECT_EQ(got, fx.file_bytes("w"));
  EXPECT_EQ(threads.size(), 1u);
}

TEST(LoadSink, ConvertedPiecesAndDirectIoGiveTheSameBytes) {
  const Fixture fx(two_tensors());
  Bytes want(*dtype_bytes_for(DType::F32, 512 * 300));
  const Bytes w = fx.file_bytes("w");
  convert(DType::F16, w, DType::F32, want, 512 * 300);
  for (const bool direct : {false, true}) {
    SinkRecorder recorder;
    TensorRequest r = request("w");
    r.dtype = DType::F32;
    r.sink = recorder.sink_for("w");
    LoadOptions options = quiet_options();
    options.mode = direct ? LoadMode::direct : LoadMode::mmap;
    options.staging_bytes_cap = loader::kMinStagingPerWorker;
    options.workers = 1;
    const LoadedModel loaded = load(fx.model, std::span(&r, 1), options);
    EXPECT_EQ(recorder.bytes("w"), want) << (direct ? "O_DIRECT" : "pread");
    EXPECT_GT(recorder.pieces("w"), 2u);
    EXPECT_LE(loaded.report.peak_staging_bytes, loader::kMinStagingPerWorker);
  }
}

TEST(LoadSink, AnErrorFromTheSinkFailsTheLoadNamingTheTensor) {
  const Fixture fx(two_tensors());
  TensorRequest r = request("b");
  r.sink = [](std::span<const std::byte>, std::uint64_t) {
    throw Error(ErrorCode::io, "the device is out of memory");
  };
  try {
    (void)load(fx.model, std::span(&r, 1), quiet_options());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the device is out of memory"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("tensor b"), std::string::npos) << e.what();
  }
}

TEST(LoadSink, ADestinationAndASinkTogetherAreRefused) {
  const Fixture fx(two_tensors());
  Bytes buffer(4096);
  TensorRequest r = request("b");
  r.destination = buffer.data();
  r.destination_size = buffer.size();
  r.sink = [](std::span<const std::byte>, std::uint64_t) {};
  try {
    (void)plan(fx.model, std::span(&r, 1), quiet_options());
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()),
              fmt::format("{}: the request gives both a destination and a sink; it takes one or "
                          "the other (tensor b, byte {})",
                          fx.path, fx.model.find("b")->offset));
  }
}

TEST(FileFacts, NamesFilesystemsAndMarksNetworkAndFuseRisky) {
  EXPECT_EQ(io::filesystem_facts(0xEF53).filesystem, "ext4");
  EXPECT_FALSE(io::filesystem_facts(0xEF53).risky_to_map);
  EXPECT_EQ(io::filesystem_facts(0x01021994).filesystem, "tmpfs");
  EXPECT_FALSE(io::filesystem_facts(0x01021994).risky_to_map);
  for (const std::uint64_t risky :
       {0x6969ULL, 0xFF534D42ULL, 0xFE534D42ULL, 0x65735546ULL, 0x0BD00BD0ULL, 0x00C36400ULL}) {
    EXPECT_TRUE(io::filesystem_facts(risky).risky_to_map) << std::hex << risky;
  }
  EXPECT_EQ(io::filesystem_facts(0x1234).filesystem, "unknown (0x1234)");
  EXPECT_FALSE(io::filesystem_facts(0x1234).risky_to_map);
}

TEST(FileFacts, CachedBytesOfAFileJustWrittenIsAllOfIt) {
  const Fixture fx(two_tensors());
  const TensorInfo* w = fx.model.find("w");
  const io::ByteRange range{w->offset, w->nbytes};
  EXPECT_EQ(io::cached_bytes(fx.path, fx.bytes.size(), std::span(&range, 1)), w->nbytes);
}

TEST(FileFacts, TheSampledEstimateSeesACachedAndAnEvictedFile) {
  const Fixture fx(two_tensors());
  const TensorInfo* w = fx.model.find("w");
  const io::ByteRange range{w->offset, w->nbytes};
  const int fd = ::open(fx.path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(io::sampled_mincore_bytes(fd, fx.path, fx.bytes.size(), std::span(&range, 1)),
            w->nbytes);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  const std::uint64_t after =
      io::sampled_mincore_bytes(fd, fx.path, fx.bytes.size(), std::span(&range, 1));
  ::close(fd);
  if (io::file_facts(fx.path).filesystem != "tmpfs") {
    EXPECT_LT(after, w->nbytes / 2);
  }
}

TEST(AutoMode, PlansRiskyFilesystemsAsLoadedAndLocalOnesAsMapped) {
  const Fixture fx(two_tensors());
  const std::vector<TensorRequest> requests = {request("w"), request("b")};
  LoadOptions options = quiet_options();
  options.mode = LoadMode::automatic;
  const std::vector<FileFacts> nfs = {{"nfs", true}};
  const Plan on_nfs = plan(fx.model, requests, options, nfs);
  EXPECT_EQ(on_nfs.tensors[0].placement, Placement::loaded);
  EXPECT_EQ(on_nfs.tensors[0].reason, Reason::risky_filesystem);
  const std::vector<FileFacts> ext4 = {{"ext4", false}};
  EXPECT_EQ(plan(fx.model, requests, options, ext4).tensors[0].placement, Placement::mapped);
  // Outside the auto mode the facts change nothing.
  options.mode = LoadMode::mmap;
  EXPECT_EQ(plan(fx.model, requests, options, nfs).tensors[0].placement, Placement::mapped);
}

// plan() alone decides as load() does: it gathers the facts load() would, and load() carries
// out a plan's facts without gathering its own.
TEST(AutoMode, PlanAloneGathersTheFactsAndLoadDoesWhatItPlanned) {
  const Fixture fx(two_tensors());
  std::vector<TensorRequest> requests = {request("w"), request("b")};
  requests[1].device.reads_host_memory = false;
  LoadOptions options = quiet_options();
  options.mode = LoadMode::automatic;
  const Plan planned = plan(fx.model, requests, options);
  ASSERT_EQ(planned.files.size(), 1u);
  EXPECT_EQ(planned.files[0].filesystem, io::file_facts(fx.path).filesystem);
  const LoadedModel loaded = load(fx.model, requests, options);
  ASSERT_EQ(loaded.tensors.size(), planned.tensors.size());
  for (std::size_t i = 0; i < planned.tensors.size(); ++i) {
    EXPECT_EQ(loaded.tensors[i].mapped, planned.tensors[i].placement == Placement::mapped) << i;
    EXPECT_EQ(loaded.tensors[i].reason, planned.tensors[i].reason) << i;
  }
  EXPECT_EQ(loaded.report.files[0].filesystem, planned.files[0].filesystem);

  // A case that turns on the facts: the file as if on NFS. The load of that plan reads the
  // tensor the plan reads, for the reason it gives, and reports the plan's filesystem.
  const std::vector<FileFacts> nfs = {{"nfs", true}};
  Plan on_nfs = plan(fx.model, requests, options, nfs);
  EXPECT_EQ(on_nfs.tensors[0].reason, Reason::risky_filesystem);
  const LoadedModel read = load(fx.model, requests, options, std::move(on_nfs));
  EXPECT_FALSE(read.tensors[0].mapped);
  EXPECT_EQ(read.tensors[0].reason, Reason::risky_filesystem);
  EXPECT_EQ(read.report.files[0].filesystem, "nfs");
  EXPECT_EQ(read.report.files[0].why.rfind("not mapped: nfs is a network or FUSE filesystem; ", 0),
            0u)
      << read.report.files[0].why;
  EXPECT_EQ(Bytes(read.tensors[0].bytes.begin(), read.tensors[0].bytes.end()), fx.file_bytes("w"));

  const std::vector<FileFacts> two = {{"ext4", false}, {"ext4", false}};
  EXPECT_THROW(plan(fx.model, requests, options, two), Error);
}

TEST(AutoMode, MapsHostTensorsAndReadsDeviceTensorsFromTheCacheWhenResident) {
  const Fixture fx(two_tensors());  // just written: in the page cache
  std::vector<TensorRequest> requests = {request("w"), request("b")};
  requests[1].device.reads_host_memory = false;
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::automatic;
  const LoadedModel loaded = load(fx.model, requests, options);
  EXPECT_TRUE(loaded.tensors[0].mapped);
  EXPECT_FALSE(loaded.tensors[1].mapped);
  EXPECT_EQ(loaded.report.mode, LoadMode::automatic);
  ASSERT_EQ(loaded.report.files.size(), 1u);
  const FileChoice& file = loaded.report.files[0];
  EXPECT_EQ(file.path, fx.path);
  EXPECT_FALSE(file.filesystem.empty());
  EXPECT_EQ(file.mapped_tensors, 1u);
  EXPECT_EQ(file.loaded_tensors, 1u);
  EXPECT_DOUBLE_EQ(file.resident_fraction, 1.0);
  EXPECT_EQ(file.read_with, "pread");
  EXPECT_NE(file.why.find("100% of their bytes were in the page cache, so pread"),
            std::string::npos)
      << file.why;
}

TEST(AutoMode, ReadsDeviceTensorsDroppingPagesBehindWhenTheFileIsNotCached) {
  const Fixture fx(two_tensors());
  ASSERT_TRUE(testing::drop_from_page_cache(fx.path));
  const TensorInfo* w = fx.model.find("w");
  const io::ByteRange range{w->offset, w->nbytes};
  if (io::cached_bytes(fx.path, fx.bytes.size(), std::span(&range, 1)) > w->nbytes / 2) {
    GTEST_SKIP() << "this filesystem (" << io::file_facts(fx.path).filesystem
                 << ") keeps the file in memory whatever we advise (tmpfs?)";
  }
  TensorRequest r = request("w");
  r.device.reads_host_memory = false;
  LoadOptions options = quiet_options();
  options.mode = weightmap::LoadMode::automatic;
  const LoadedModel loaded = load(fx.model, std::span(&r, 1), options);
  const FileChoice& file = loaded.report.files[0];
  EXPECT_LT(file.resident_fraction, 0.5);
  EXPECT_EQ(file.read_with, "pread, dropping pages behind");
  EXPECT_NE(file.why.find("so pread, dropping each tensor's pages once read"), std::string::npos)
      << file.why;
  EXPECT_EQ(Bytes(loaded.tensors[0].bytes.begin(), loaded.tensors[0].bytes.end()),
            fx.file_bytes("w"));
  // What was read is not left in the page cache.
  EXPECT_LT(io::cached_bytes(fx.path, fx.bytes.size(), std::span(&range, 1)), w->nbytes / 2);
}

TEST(AutoMode, FixedModesNameThemselvesInTheReport) {
  const Fixture fx(two_tensors());
  const std::vector<TensorRequest> requests = {request("b")};
  LoadOptions options = quiet_options();
  EXPECT_EQ(load(fx.model, requests, options).report.mode, LoadMode::mmap);
  options.mode = LoadMode::read;
  const LoadedModel read = load(fx.model, requests, options);
  EXPECT_EQ(read.report.mode, LoadMode::read);
  EXPECT_EQ(read.report.files[0].read_with, "pread");
  EXPECT_EQ(read.report.files[0].why, "the read mode");
  options.mode = LoadMode::direct;
  const LoadedModel direct = load(fx.model, requests, options);
  EXPECT_EQ(direct.report.mode, LoadMode::direct);
  EXPECT_EQ(direct.report.files[0].why, "the direct mode");
}

TEST(LoadModeNames, EveryModeHasTheNameTheDocsGiveAndBack) {
  const std::vector<std::string_view> documented = {"auto", "mmap", "read", "direct"};
  ASSERT_EQ(std::size(kLoadModes), documented.size());
  for (std::size_t i = 0; i < documented.size(); ++i) {
    EXPECT_EQ(static_cast<std::size_t>(kLoadModes[i]), i);
    EXPECT_EQ(load_mode_name(kLoadModes[i]), documented[i]);
    EXPECT_EQ(load_mode_named(documented[i]), kLoadModes[i]);
  }
  EXPECT_EQ(load_mode_named("mmap+direct"), std::nullopt);
  EXPECT_EQ(load_mode_name(static_cast<LoadMode>(4)), "");
}

TEST(LoadPlanned, CarriesOutTheCallersPlan) {
  const Fixture fx(two_tensors());
  std::vector<TensorRequest> requests = {request("b"), request("w")};
  requests[1].device.reads_host_memory = false;
  Plan planned = plan(fx.model, requests, quiet_options());
  const LoadedModel loaded = load(fx.model, requests, quiet_options(), std::move(planned));
  ASSERT_EQ(loaded.tensors.size(), 2u);
  EXPECT_TRUE(loaded.tensors[0].mapped);
  EXPECT_FALSE(loaded.tensors[1].mapped);
  EXPECT_EQ(Bytes(loaded.tensors[1].bytes.begin(), loaded.tensors[1].bytes.end()),
            fx.file_bytes("w"));
}

TEST(LoadPlanned, APlanForOtherRequestsIsRefused) {
  const Fixture fx(two_tensors());
  const std::vector<TensorRequest> planned_for = {request("b"), request("w")};
  const std::vector<TensorRequest> swapped = {request("w"), request("b")};
  const std::vector<TensorRequest> fewer = {request("b")};
  for (const auto* requests : {&swapped, &fewer}) {
    try {
      (void)load(fx.model, *requests, quiet_options(),
                 plan(fx.model, planned_for, quiet_options()));
      FAIL() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      EXPECT_NE(std::string(e.what()).find("the plan was not made for these requests"),
                std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace weightmap
