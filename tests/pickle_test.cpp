// The restricted pickle reader on its own: the value tree it builds from PyTorch's opcodes,
// globals it records, and its bounds (stack, memo, objects), each a clear error.
#include <gtest/gtest.h>

#include <string>

#include "format/pickle_reader.hpp"
#include "support/pytorch_bytes.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

using format::pickle::Kind;
using test::PickleBytes;

format::pickle::Program run(const std::string& bytes, const format::pickle::Limits& limits = {}) {
  return format::pickle::read_pickle(std::as_bytes(std::span(bytes)), {"data.pkl", 1000}, limits);
}

std::string error_of(const std::string& bytes, const format::pickle::Limits& limits = {}) {
  try {
    run(bytes, limits);
    return "no error";
  } catch (const Error& error) {
    return error.what();
  }
}

TEST(PickleReader, StateDictBecomesADictOfTensorsOverStorages) {
  const auto program = run(test::pytorch_pickle_two_tensors());
  const auto& root = program.nodes[program.root];
  ASSERT_EQ(root.kind, Kind::dict);
  ASSERT_EQ(root.items.size(), 4u);
  EXPECT_EQ(program.nodes[root.items[0]].text, "weight");
  EXPECT_EQ(program.nodes[root.items[1]].kind, Kind::tensor);
  ASSERT_EQ(program.tensors.size(), 2u);
  EXPECT_EQ(program.tensors[0].shape, (std::vector<std::uint64_t>{2, 3}));
  EXPECT_EQ(program.tensors[0].stride, (std::vector<std::uint64_t>{3, 1}));
  ASSERT_EQ(program.storages.size(), 2u);
  EXPECT_EQ(program.storages[1].key, "1");
  EXPECT_EQ(program.storages[1].dtype, DType::F32);
  EXPECT_EQ(program.storages[1].numel, 3u);
  EXPECT_EQ(program.globals,
            (std::vector<std::string>{"collections.OrderedDict", "torch.FloatStorage",
                                      "torch._utils._rebuild_tensor_v2"}));
}

TEST(PickleReader, Protocol4FramesStackGlobalAndMemoize) {
  PickleBytes p;
  p.proto(4).op(0x95).raw(std::uint64_t{0}).op(0x8c).op(5);
  for (const char c : std::string("torch")) p.raw(c);
  p.op(0x94).op(0x8c).op(12);
  for (const char c : std::string("HalfStorage!")) p.raw(c);
  p.op(0x94).op(0x93).op(0x94).op('0').op('h').op(0).stop();
  const auto program = run(p.str());
  EXPECT_EQ(program.nodes[program.root].text, "torch");
  EXPECT_EQ(program.globals, (std::vector<std::string>{"torch.HalfStorage!"}));
}

TEST(PickleReader, LongsAndFloatsAreDecoded) {
  PickleBytes p;
  p.proto(2).mark().op(0x8a).op(2).raw(std::int16_t{-300}).op('G');
  p.raw(std::uint64_t{0x000000000000F03FULL});  // 1.0, big-endian
  p.op(0x8a).op(9).raw(std::uint64_t{0}).raw(std::uint8_t{1}).op('t').stop();
  const auto program = run(p.str());
  const auto& items = program.nodes[program.root].items;
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(program.nodes[items[0]].integer, -300);
  EXPECT_EQ(program.nodes[items[1]].number, 1.0);
  EXPECT_EQ(program.nodes[items[2]].kind, Kind::big_integer);
}

TEST(PickleReader, StackUnderflowIsAnError) {
  EXPECT_EQ(error_of("\x80\x02R."), "data.pkl: pickle: REDUCE on an empty stack (byte 1002)");
}

TEST(PickleReader, PoppingBelowAMarkIsAnError) {
  EXPECT_EQ(error_of("\x80\x02N(0."), "data.pkl: pickle: POP on an empty stack (byte 1004)");
}

TEST(PickleReader, MemoEntriesAreBounded) {
  format::pickle::Limits limits;
  limits.max_memo = 2;
  PickleBytes p;
  p.proto(2).op('N').put(0).put(1).put(2).stop();
  EXPECT_EQ(error_of(p.str(), limits), "data.pkl: pickle: more than 2 memo entries (byte 1013)");
}

TEST(PickleReader, ObjectsAreBounded) {
  format::pickle::Limits limits;
  limits.max_objects = 3;
  EXPECT_EQ(error_of("\x80\x02NNNN.", limits), "data.pkl: pickle: more than 3 objects (byte 1005)");
}

TEST(PickleReader, StackIsBounded) {
  format::pickle::Limits limits;
  limits.max_stack = 2;
  EXPECT_EQ(error_of("\x80\x02NNN.", limits),
            "data.pkl: pickle: more than 2 values on the stack (byte 1004)");
}

TEST(PickleReader, ProtocolsOtherThanTwoToFiveAreUnsupported) {
  EXPECT_EQ(error_of("\x80\x01N."),
            "data.pkl: pickle: protocol 1 (PyTorch writes protocols 2 to 5) (byte 1000)");
}

TEST(PickleReader, TensorRankIsBounded) {
  std::vector<std::int32_t> dims(65, 1);
  PickleBytes p;
  p.proto(2).tensor("FloatStorage", "0", 1, 0, dims, dims).stop();
  const std::string what = error_of(p.str());
  EXPECT_TRUE(
      what.starts_with("data.pkl: pickle: a tensor's size has 65 dimensions, more than "
                       "64 (byte "))
      << what;
}

}  // namespace
}  // namespace weightmap
