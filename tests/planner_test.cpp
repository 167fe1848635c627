// The planner alone: every Reason from a request that triggers it, on models built by hand
// whose files do not exist (planning reads no file).
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "weightmap/error.hpp"
#include "weightmap/load.hpp"

namespace weightmap {
namespace {

constexpr const char* kPath = "/nonexistent/weightmap-planner/model.safetensors";

// A model of one file that does not exist: "a" (F32 [4,4] at 64), "b" (F16 [8] at 128),
// "c" (F32 [2] at 200, misaligned for 16-byte devices), "d" (I64 [3] at 256).
Model test_model(FileFormat format = FileFormat::safetensors) {
  ModelFile file;
  file.path = kPath;
  file.format = format;
  file.size = 4096;
  file.data_offset = 64;
  std::vector<TensorInfo> tensors;
  tensors.push_back({"a", DType::F32, {4, 4}, 0, 64, 64});
  tensors.push_back({"b", DType::F16, {8}, 0, 128, 16});
  tensors.push_back({"c", DType::F32, {2}, 0, 200, 8});
  tensors.push_back({"d", DType::I64, {3}, 0, 256, 24});
  return Model({file}, std::move(tensors), {});
}

TensorRequest request(std::string name) {
  TensorRequest r;
  r.name = std::move(name);
  return r;
}

PlannedTensor plan_one(const TensorRequest& r, const LoadOptions& options = {}) {
  const Model model = test_model();
  const Plan p = plan(model, std::span(&r, 1), options);
  EXPECT_EQ(p.tensors.size(), 1u);
  return p.tensors.at(0);
}

TEST(PlannerTest, SameTypeAndShapeIsMappedAtItsOffset) {
  const PlannedTensor t = plan_one(request("a"));
  EXPECT_EQ(t.placement, Placement::mapped);
  EXPECT_FALSE(t.reason);
  EXPECT_EQ(t.file, 0u);
  EXPECT_EQ(t.offset, 64u);
  EXPECT_EQ(t.bytes, 64u);
  EXPECT_EQ(t.access, Access::read_only);
}

TEST(PlannerTest, ReshapeWithTheSameElementCountIsMapped) {
  TensorRequest r = request("a");
  r.shape = std::vector<std::uint64_t>{16};
  r.dtype = DType::F32;
  const PlannedTensor t = plan_one(r);
  EXPECT_EQ(t.placement, Placement::mapped);
  EXPECT_EQ(t.shape, (std::vector<std::uint64_t>{16}));
}

TEST(PlannerTest, DtypeDiffers) {
  TensorRequest r = request("b");
  r.dtype = DType::F32;
  const PlannedTensor t = plan_one(r);
  EXPECT_EQ(t.placement, Placement::loaded);
  EXPECT_EQ(t.reason, Reason::dtype_differs);
  EXPECT_EQ(t.bytes, 32u);  // 8 f32 elements
  EXPECT_EQ(t.file_bytes, 16u);
}

TEST(PlannerTest, ElementCountDiffers) {
  TensorRequest r = request("a");
  r.shape = std::vector<std::uint64_t>{3, 4};
  EXPECT_EQ(plan_one(r).reason, Reason::element_count_differs);
}

TEST(PlannerTest, MisalignedForDevice) {
  TensorRequest r = request("c");  // offset 200 = 8 x 25
  r.device.alignment = 16;
  EXPECT_EQ(plan_one(r).reason, Reason::misaligned_for_device);
  r.device.alignment = 8;
  EXPECT_EQ(plan_one(r).placement, Placement::mapped);
}

TEST(PlannerTest, AlignmentAboveThePageSizeIsMisaligned) {
  TensorRequest r = request("a");
  r.device.alignment = std::size_t{1} << 30;  // mapping bases are only page-aligned
  EXPECT_EQ(plan_one(r).reason, Reason::misaligned_for_device);
}

TEST(PlannerTest, DeviceCannotReadHostMemory) {
  TensorRequest r = request("a");
  r.device.reads_host_memory = false;
  EXPECT_EQ(plan_one(r).reason, Reason::device_cannot_read_host_memory);
}

TEST(PlannerTest, WritesInPlaceMapTheWholeFileCopyOnWrite) {
  std::vector<TensorRequest> requests = {request("a"), request("b")};
  requests[1].writes_in_place = true;
  const Plan p = plan(test_model(), requests);
  ASSERT_EQ(p.tensors.size(), 2u);
  EXPECT_EQ(p.tensors[0].placement, Placement::mapped);
  EXPECT_EQ(p.tensors[1].placement, Placement::mapped);
  // One mapping per file: the tensor nobody patches shares the copy-on-write mapping.
  EXPECT_EQ(p.tensors[0].access, Access::copy_on_write);
  EXPECT_EQ(p.tensors[1].access, Access::copy_on_write);
}

TEST(PlannerTest, WritesInPlaceOnAReadOnlyMapping) {
  TensorRequest r = request("a");
  r.writes_in_place = true;
  LoadOptions options;
  options.allow_copy_on_write = false;
  EXPECT_EQ(plan_one(r, options).reason, Reason::copy_on_write_refused);
}

TEST(PlannerTest, FormatCannotBeMappedForAStridedTensor) {
  ModelFile file;
  file.path = "/nonexistent/weightmap-planner/model.pt";
  file.format = FileFormat::pytorch_zip;
  file.size = 4096;
  TensorInfo transposed{"t", DType::F32, {2, 3}, 0, 64, 24};
  transposed.strides = {1, 2};
  const Model model({file}, {transposed}, {});
  const TensorRequest r = request("t");
  const Plan p = plan(model, std::span(&r, 1));
  EXPECT_EQ(p.tensors.at(0).reason, Reason::format_cannot_be_mapped);
}

TEST(PlannerTest, MappingDisabledByTheCaller) {
  LoadOptions options;
  options.mode = weightmap::LoadMode::read;
  EXPECT_EQ(plan_one(request("a"), options).reason, Reason::mapping_disabled);
}

TEST(PlannerTest, ADestinationBufferMeansLoadedIntoIt) {
  std::vector<std::byte> buffer(64);
  TensorRequest r = request("a");
  r.destination = buffer.data();
  r.destination_size = buffer.size();
  EXPECT_EQ(plan_one(r).reason, Reason::mapping_disabled);
}

TEST(PlannerTest, ADestinationAndASinkGiveTheSameReasonForTheSameDevice) {
  std::vector<std::byte> buffer(64);
  TensorRequest into_buffer = request("a");
  into_buffer.destination = buffer.data();
  into_buffer.destination_size = buffer.size();
  TensorRequest into_sink = request("a");
  into_sink.sink = [](std::span<const std::byte>, std::uint64_t) {};
  for (const bool host : {true, false}) {
    into_buffer.device.reads_host_memory = host;
    into_sink.device.reads_host_memory = host;
    const Reason expected =
        host ? Reason::mapping_disabled : Reason::device_cannot_read_host_memory;
    EXPECT_EQ(plan_one(into_buffer).reason, expected) << host;
    EXPECT_EQ(plan_one(into_sink).reason, expected) << host;
  }
}

TEST(PlannerTest, ADestinationTooSmallIsAnError) {
  std::vector<std::byte> buffer(63);
  TensorRequest r = request("a");
  r.destination = buffer.data();
  r.destination_size = buffer.size();
  try {
    plan_one(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_STREQ(e.what(),
                 "/nonexistent/weightmap-planner/model.safetensors: the destination "
                 "holds 63 bytes but the tensor needs 64 (tensor a, byte 64)");
  }
}

TEST(PlannerTest, AMissingTensorIsAnErrorNamingIt) {
  try {
    plan_one(request("nope"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::not_found);
    EXPECT_STREQ(e.what(),
                 "/nonexistent/weightmap-planner/model.safetensors: the model has no tensor of "
                 "this name (mark the request optional if it may be absent) (tensor nope)");
  }
}

TEST(PlannerTest, AMissingOptionalTensorIsAbsent) {
  TensorRequest r = request("nope");
  r.optional = true;
  EXPECT_EQ(plan_one(r).placement, Placement::absent);
}

TEST(PlannerTest, UnrequestedTensorsAreListedInFileOrder) {
  const std::vector<TensorRequest> requests = {request("b")};
  const Plan p = plan(test_model(), requests);
  EXPECT_EQ(p.unrequested, (std::vector<std::string>{"a", "c", "d"}));
  EXPECT_EQ(p.unrequested_bytes, 64u + 8u + 24u);
}

TEST(PlannerTest, EachPlannedTensorNamesItsPlaceInTheIndex) {
  const std::vector<TensorRequest> requests = {request("d"), request("b"), request("d")};
  const Plan p = plan(test_model(), requests);
  ASSERT_EQ(p.tensors.size(), 3u);
  EXPECT_EQ(p.tensors[0].tensor, 3u);
  EXPECT_EQ(p.tensors[1].tensor, 1u);
  EXPECT_EQ(p.tensors[2].tensor, 3u);
  EXPECT_EQ(p.unrequested, (std::vector<std::string>{"a", "c"}));
}

TEST(PlannerTest, RequestsInFileOrderAndOutOfItFindTheSameTensors) {
  // The planner tries the tensor after the last one found before looking the name up.
  const std::vector<TensorRequest> requests = {request("a"), request("b"), request("d"),
                                               request("c"), request("a")};
  const Plan p = plan(test_model(), requests);
  std::vector<std::size_t> found;
  for (const auto& t : p.tensors) found.push_back(t.tensor);
  EXPECT_EQ(found, (std::vector<std::size_t>{0, 1, 3, 2, 0}));
  EXPECT_TRUE(p.unrequested.empty());
}

TEST(PlannerTest, ATypeConvertCannotProduceIsAnError) {
  TensorRequest r = request("a");
  r.dtype = DType::Q4_0;
  try {
    plan_one(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unsupported);
    EXPECT_STREQ(e.what(),
                 "/nonexistent/weightmap-planner/model.safetensors: cannot convert f32 "
                 "to q4_0 (tensor a, byte 64)");
  }
}

TEST(PlannerTest, IntegerNarrowingIsPlannedAsAConversion) {
  TensorRequest r = request("d");
  r.dtype = DType::I32;
  const PlannedTensor t = plan_one(r);
  EXPECT_EQ(t.reason, Reason::dtype_differs);
  EXPECT_EQ(t.bytes, 12u);
}

TEST(PlannerTest, AnAlignmentThatIsNotAPowerOfTwoIsAnError) {
  TensorRequest r = request("a");
  r.device.alignment = 24;
  try {
    plan_one(r);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_STREQ(e.what(), "device alignment 24 is not a power of two (tensor a)");
  }
}

TEST(PlannerTest, EveryReasonHasADistinctNameAndSentence) {
  std::set<std::string_view> names;
  std::set<std::string_view> sentences;
  for (std::size_t i = 0; i < kReasonCount; ++i) {
    const auto reason = static_cast<Reason>(i);
    names.insert(reason_name(reason));
    sentences.insert(reason_sentence(reason));
  }
  EXPECT_EQ(names.size(), kReasonCount);
  EXPECT_EQ(sentences.size(), kReasonCount);
  EXPECT_EQ(reason_sentence(Reason::mapping_disabled), "memory mapping was disabled by the caller");
}

}  // namespace
}  // namespace weightmap
