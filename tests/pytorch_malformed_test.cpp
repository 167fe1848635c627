// Broken PyTorch checkpoints, built byte by byte: each gives one clear weightmap::Error (no
// crash, no hang, nothing executed). The valid base is what torch.save writes for
// {"weight": f32 [2, 3], "bias": f32 [3]}.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "format/readers.hpp"
#include "io/byte_source.hpp"
#include "support/pytorch_bytes.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;
using test::PickleBytes;
using test::ZipBytes;

std::string error_of(const std::string& bytes) {
  const io::MemoryByteSource source("bad.pt", std::as_bytes(std::span(bytes)));
  try {
    const FileIndex index = format::read_pytorch(source);
    return fmt::format("no error ({} tensors)", index.tensors.size());
  } catch (const Error& error) {
    return error.what();
  }
}

template <typename T>
void store(std::string& bytes, std::size_t at, T value) {
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

// The base archive and where its parts are.
struct Base {
  std::string bytes;
  ZipBytes zip;
  std::size_t eocd = 0;
  std::size_t cd = 0;  // first central directory entry
};

Base base(const std::string& pickle = test::pytorch_pickle_two_tensors()) {
  Base b;
  b.zip.add("archive/data.pkl", pickle)
      .add("archive/data/0", test::float_bytes(6))
      .add("archive/data/1", test::float_bytes(3, 10.0f))
      .add("archive/version", "3\n");
  b.bytes = b.zip.finish();
  b.eocd = b.bytes.size() - 22;
  std::uint32_t cd = 0;
  std::memcpy(&cd, b.bytes.data() + b.eocd + 16, 4);
  b.cd = cd;
  return b;
}

// A checkpoint whose data.pkl is `pickle` and whose storages are those of the base.
std::string with_pickle(const std::string& pickle) { return base(pickle).bytes; }

// {"weight": <tensor>} with the tensor given as raw pickle text.
std::string one_tensor(const std::function<void(PickleBytes&)>& tensor) {
  PickleBytes p;
  p.proto(2).empty_ordered_dict().mark().text("weight");
  tensor(p);
  p.op('u').stop();
  return p.str();
}

TEST(PytorchMalformed, ValidBaseReadsTwoTensors) {
  EXPECT_EQ(error_of(base().bytes), "no error (2 tensors)");
}

TEST(PytorchMalformed, EveryTruncationIsAnError) {
  const std::string bytes = base().bytes;
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    const std::string what = error_of(bytes.substr(0, n));
    EXPECT_TRUE(what.starts_with("bad.pt: ")) << n << ": " << what;
  }
}

struct Case {
  std::string name;
  std::function<std::string()> bytes;
  std::string error;  // what(), without the leading "bad.pt: "
};

std::vector<Case> cases() {
  std::vector<Case> out;
  out.push_back({"ShorterThanAnEndRecord", [] { return std::string("PK\3\4abc"); },
                 "the file is 7 bytes, too short for a zip end record (22 bytes) (byte 0)"});
  out.push_back({"NoEndRecord", [] { return base().bytes + "trailing"; },
                 "no zip end of central directory record at the end of the file (truncated?) "
                 "(byte 893)"});
  out.push_back({"CentralDirectoryOutsideTheFile",
                 [] {
                   Base b = base();
                   store<std::uint32_t>(b.bytes, b.eocd + 16, 0x7FFFFFF0);
                   return b.bytes;
                 },
                 "the central directory [2147483632, 2147483875) does not end before the "
                 "end record at byte 885 (byte 885)"});
  out.push_back({"MoreEntriesThanTheDirectoryHolds",
                 [] {
                   Base b = base();
                   store<std::uint16_t>(b.bytes, b.eocd + 8, 0xFFF0);
                   store<std::uint16_t>(b.bytes, b.eocd + 10, 0xFFF0);
                   return b.bytes;
                 },
                 "the end record claims 65520 entries, but the 243-byte central directory "
                 "holds at most 5 (byte 885)"});
  out.push_back({"LocalHeaderOffsetOutsideTheFile",
                 [] {
                   Base b = base();
                   store<std::uint32_t>(b.bytes, b.cd + 42, 0x7FFFFFFF);
                   return b.bytes;
                 },
                 "zip entry \"archive/data.pkl\": local header offset 2147483647 is not before "
                 "the central directory (byte 642) (byte 642)"});
  out.push_back({"BadLocalHeaderSignature",
                 [] {
                   Base b = base();
                   b.bytes[0] = 'X';
                   return b.bytes;
                 },
                 "zip entry \"archive/data.pkl\": no PK\\3\\4 local header at byte 0 (byte 0)"});
  out.push_back({"LocalHeaderNamesAnotherEntry",
                 [] {
                   Base b = base();
                   b.bytes[30] = 'X';
                   return b.bytes;
                 },
                 "zip entry \"archive/data.pkl\": the local header names it \"Xrchive/data.pkl\" "
                 "(byte 30)"});
  out.push_back({"EntryDataRunsIntoTheCentralDirectory",
                 [] {
                   Base b = base();
                   // the version entry (the last one) claims 1000 bytes
                   std::size_t at = b.cd;
                   for (int i = 0; i < 3; ++i) {
                     std::uint16_t n = 0;
                     std::memcpy(&n, b.bytes.data() + at + 28, 2);
                     at += 46 + n;
                   }
                   store<std::uint32_t>(b.bytes, at + 20, 1000);
                   store<std::uint32_t>(b.bytes, at + 24, 1000);
                   return b.bytes;
                 },
                 "zip entry \"archive/version\": its 1000 data bytes at byte 640 run "
                 "past the start of the central directory (byte 642) (byte 640)"});
  out.push_back({"DuplicateEntryNames",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/data.pkl", test::pytorch_pickle_two_tensors())
                       .add("archive/data/0", test::float_bytes(6))
                       .add("archive/data/0", test::float_bytes(6));
                   return zip.finish();
                 },
                 "zip entry \"archive/data/0\" appears twice (byte 722)"});
  out.push_back({"NoDataPkl",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/other.txt", "hello");
                   return zip.finish();
                 },
                 "a zip archive without <archive>/data.pkl is not a PyTorch checkpoint (byte 69)"});
  out.push_back({"CompressedPickle",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/data.pkl", test::pytorch_pickle_two_tensors(), 8);
                   return zip.finish();
                 },
                 "zip entry \"archive/data.pkl\" is compressed (method 8); PyTorch stores entries "
                 "uncompressed and weightmap reads only those (byte 0)"});
  out.push_back({"CompressedStorage",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/data.pkl", test::pytorch_pickle_two_tensors())
                       .add("archive/data/0", test::float_bytes(6), 8)
                       .add("archive/data/1", test::float_bytes(3));
                   return zip.finish();
                 },
                 "storage entry \"archive/data/0\" is compressed (method 8); weightmap maps and "
                 "reads stored entries only (tensor weight, byte 400)"});
  out.push_back({"MissingStorageEntry",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/data.pkl", test::pytorch_pickle_two_tensors())
                       .add("archive/data/0", test::float_bytes(6));
                   return zip.finish();
                 },
                 "storage \"1\" has no zip entry \"archive/data/1\" (tensor bias, byte 348)"});
  out.push_back({"StorageSmallerThanItsTensor",
                 [] {
                   return with_pickle(one_tensor([](PickleBytes& p) {
                     p.tensor("FloatStorage", "0", 6, 0, {3, 3}, {3, 1});
                   }));
                 },
                 "the tensor (offset 0, size [3, 3], stride [3, 1]) reaches past the end of its "
                 "storage \"0\" of 6 elements (tensor weight, byte 251)"});
  out.push_back({"StorageOffsetPastTheEnd",
                 [] {
                   return with_pickle(one_tensor(
                       [](PickleBytes& p) { p.tensor("FloatStorage", "0", 6, 5, {2}, {1}); }));
                 },
                 "the tensor (offset 5, size [2], stride [1]) reaches past the end of its "
                 "storage \"0\" of 6 elements (tensor weight, byte 241)"});
  out.push_back({"StorageClaimsMoreThanItsEntry",
                 [] {
                   return with_pickle(one_tensor([](PickleBytes& p) {
                     p.tensor("FloatStorage", "0", 600, 0, {2, 3}, {3, 1});
                   }));
                 },
                 "storage \"0\" claims 600 elements of 4 bytes but its entry holds 24 bytes "
                 "(tensor weight, byte 320)"});
  out.push_back(
      {"StridesOverflow",
       [] {
         return with_pickle(one_tensor([](PickleBytes& p) {
           p.tensor("FloatStorage", "0", 6, 0, {65536, 65536, 65536, 65536}, {1, 1, 1, 1});
         }));
       },
       "the tensor's size or strides overflow 64 bits (tensor weight, byte 271)"});
  out.push_back({"StorageOfAnUnknownClass",
                 [] {
                   return with_pickle(one_tensor(
                       [](PickleBytes& p) { p.tensor("QInt8Storage", "0", 6, 0, {6}, {1}); }));
                 },
                 "pickle: a storage's type is torch.QInt8Storage, which is not a PyTorch storage "
                 "class weightmap knows (byte 192)"});
  out.push_back({"DuplicateNamesAfterFlattening",
                 [] {
                   PickleBytes p;
                   p.proto(2).op('}').mark();
                   p.text("a.b").tensor("FloatStorage", "1", 3, 0, {3}, {1});
                   p.text("a").op('}').text("b").tensor("FloatStorage", "1", 3, 0, {3}, {1});
                   p.op('s').op('u').stop();
                   return with_pickle(p.str());
                 },
                 "tensor name appears twice in the checkpoint (tensor a.b, byte 576)"});
  out.push_back({"ListThatContainsItself",
                 [] {
                   PickleBytes p;
                   p.proto(2).op('}').text("loop").op(']').put(0).get(0).op('a').op('s').stop();
                   return with_pickle(p.str());
                 },
                 "dicts and lists nested deeper than 64 levels (tensor "
                 "loop.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                 "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0)"});
  out.push_back({"SharedSubtreesMultiplyingTheWork",
                 [] {
                   // t = (x, x), x = (y, y), ...: 2^60 paths to one tensor through 60 tuples
                   PickleBytes p;
                   p.proto(2).op('}').text("t").tensor("FloatStorage", "1", 3, 0, {3}, {1});
                   for (int i = 0; i < 60; ++i) p.op('2').op(0x86);
                   p.op('s').stop();
                   return with_pickle(p.str());
                 },
                 "the checkpoint's objects refer to each other too many times to list (tensor "
                 "t.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0."
                 "0.0.0.0.0.0.0.0.0.0.0.1.0.1.0.0.0.0.1.1)"});
  out.push_back({"DeepMarkNesting",
                 [] {
                   PickleBytes p;
                   p.proto(2);
                   for (int i = 0; i < 100000; ++i) p.mark();
                   return with_pickle(p.str());
                 },
                 "pickle: MARKs nested deeper than 1000 (byte 1066)"});
  out.push_back({"HugeMemoIndex",
                 [] {
                   PickleBytes p;
                   p.proto(2).op('}').get(0xFFFFFFF0).stop();
                   return with_pickle(p.str());
                 },
                 "pickle: memo entry 4294967280 was never stored (byte 67)"});
  out.push_back({"HugeStringLength",
                 [] {
                   PickleBytes p;
                   p.proto(4).op(0x8d).raw(std::uint64_t{1} << 62);
                   return with_pickle(p.str());
                 },
                 "pickle: a BINUNICODE8 of 4611686018427387904 bytes is longer than the limit of "
                 "67108864 (byte 66)"});
  out.push_back({"StringPastTheEndOfThePickle",
                 [] {
                   PickleBytes p;
                   p.proto(2).op('X').raw(std::uint32_t{1000}).stop();
                   return with_pickle(p.str());
                 },
                 "pickle: the BINUNICODE needs 1000 bytes but the pickle has 1 left (byte 66)"});
  out.push_back({"NoStop",
                 [] {
                   PickleBytes p;
                   p.proto(2).op('}');
                   return with_pickle(p.str());
                 },
                 "pickle: the pickle ends without a STOP opcode (byte 67)"});
  out.push_back({"TextProtocolOpcode", [] { return with_pickle("(I1\nI2\nt."); },
                 "pickle: opcode INT (0x49) is not one PyTorch writes (byte 65)"});
  out.push_back({"UnknownOpcode", [] { return with_pickle(std::string("\x80\x02\xff.", 4)); },
                 "pickle: unknown opcode 0xff (byte 66)"});
  out.push_back({"ShapeAndStrideOfDifferentLength",
                 [] {
                   return with_pickle(one_tensor([](PickleBytes& p) {
                     p.tensor("FloatStorage", "0", 6, 0, {2, 3}, {1});
                   }));
                 },
                 "pickle: a tensor has 2 sizes but 1 strides (byte 246)"});
  out.push_back({"BigEndianCheckpoint",
                 [] {
                   ZipBytes zip;
                   zip.add("archive/data.pkl", test::pytorch_pickle_two_tensors())
                       .add("archive/byteorder", "big");
                   return zip.finish();
                 },
                 "the checkpoint's byte order is \"big\"; weightmap reads little-endian "
                 "checkpoints only (byte 512)"});
  return out;
}

class PytorchMalformedCase : public ::testing::TestWithParam<Case> {};

TEST_P(PytorchMalformedCase, GivesOneClearError) {
  EXPECT_EQ(error_of(GetParam().bytes()), "bad.pt: " + GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(Corpus, PytorchMalformedCase, ::testing::ValuesIn(cases()),
                         [](const auto& param_info) { return param_info.param.name; });

// The marker file a pickle would create if anything in it ran.
class PytorchNothingRuns : public ::testing::Test {
 protected:
  testing::TempDir dir_{"weightmap-pwned"};
  fs::path marker_ = dir_.path() / "pwned";
};

TEST_F(PytorchNothingRuns, StorageBuiltByOsSystemIsAnErrorNamingIt) {
  const std::string command = "touch " + marker_.string();
  const std::string pickle = one_tensor([&](PickleBytes& p) {
    p.global("torch._utils", "_rebuild_tensor_v2").mark();
    p.global("os", "system").mark().text(command).op('t').op('R');
    p.integer(0).ints({2, 3}).ints({3, 1}).op(0x89).empty_ordered_dict().op('t').op('R');
  });
  const std::string what = error_of(with_pickle(pickle));
  EXPECT_TRUE(
      what.starts_with("bad.pt: pickle: a tensor's storage would be made by calling "
                       "os.system, which weightmap does not know; nothing was run (byte "))
      << what;
  EXPECT_FALSE(fs::exists(marker_));
}

TEST_F(PytorchNothingRuns, ParameterBuiltByEvalIsAnErrorNamingIt) {
  const std::string code = "__import__('os').system('touch " + marker_.string() + "')";
  const std::string pickle = one_tensor([&](PickleBytes& p) {
    p.global("torch._utils", "_rebuild_parameter").mark();
    p.global("builtins", "eval").mark().text(code).op('t').op('R');
    p.op(0x88).empty_ordered_dict().op('t').op('R');
  });
  const std::string what = error_of(with_pickle(pickle));
  EXPECT_TRUE(
      what.starts_with("bad.pt: pickle: a parameter's tensor would be made by calling "
                       "builtins.eval, which weightmap does not know; nothing was run "
                       "(byte "))
      << what;
  EXPECT_FALSE(fs::exists(marker_));
}

TEST_F(PytorchNothingRuns, UnknownCallsBesideTheWeightsAreListedNotRun) {
  const std::string command = "touch " + marker_.string();
  PickleBytes p;
  p.proto(2).empty_ordered_dict().mark();
  p.text("weight").tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1});
  p.text("hook").global("os", "system").mark().text(command).op('t').op('R');
  p.text("callback").global("pytorch_lightning.callbacks", "ModelCheckpoint").op(')').op(0x81);
  p.op('}').text("best").integer(1).op('s').op('b');
  p.op('u').stop();
  const std::string bytes = with_pickle(p.str());
  const io::MemoryByteSource source("ok.pt", std::as_bytes(std::span(bytes)));
  const FileIndex index = format::read_pytorch(source);
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_EQ(index.tensors[0].name, "weight");
  ASSERT_EQ(index.metadata.size(), 1u);
  EXPECT_EQ(index.metadata[0].first, "pytorch.globals");
  std::vector<std::string> globals;
  for (const auto& value : std::get<MetadataArray>(index.metadata[0].second.value)) {
    globals.push_back(std::get<std::string>(value.value));
  }
  EXPECT_EQ(globals,
            (std::vector<std::string>{"collections.OrderedDict", "os.system",
                                      "pytorch_lightning.callbacks.ModelCheckpoint",
                                      "torch.FloatStorage", "torch._utils._rebuild_tensor_v2"}));
  EXPECT_FALSE(fs::exists(marker_));
}

}  // namespace
}  // namespace weightmap
