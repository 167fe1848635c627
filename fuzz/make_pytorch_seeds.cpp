// Writes the seed corpus of the PyTorch fuzzers: zip archives laid out as torch.save writes
// them (plain and zip64) for fuzz_zip, and data.pkl pickles for fuzz_pickle.
#include <filesystem>
#include <fstream>
#include <string>

#include "support/pytorch_bytes.hpp"

namespace {

namespace fs = std::filesystem;
using weightmap::test::PickleBytes;

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A Lightning-style checkpoint: nested state dict, a parameter, views, numbers, an object
// of an unknown class with state, and a list.
std::string nested_pickle() {
  PickleBytes p;
  p.proto(2).op('}').mark();
  p.text("state_dict").empty_ordered_dict().mark();
  p.text("w").global("torch._utils", "_rebuild_parameter").mark();
  p.tensor("FloatStorage", "0", 6, 0, {2, 3}, {3, 1}).op(0x88).empty_ordered_dict().op('t').op('R');
  p.text("wt").tensor("FloatStorage", "0", 6, 0, {3, 2}, {1, 3});
  p.text("b").tensor("FloatStorage", "1", 3, 1, {2}, {1});
  p.op('u');
  p.text("global_step").integer(5).text("epoch").op('K').op(1);
  p.text("callbacks").global("__main__", "Callback").op(')').op(0x81).op('}').text("best").op('G');
  p.raw(std::uint64_t{0x3FD0000000000000ULL}).op('s').op('b');
  p.text("lrs").op(']').mark().integer(1).integer(2).op('e');
  p.op('u').stop();
  return p.str();
}

std::string protocol4_pickle() {
  PickleBytes p;
  p.proto(4).op(0x95).raw(std::uint64_t{0}).op('}').op(0x94).op(0x8c).op(1).op('a').op(0x94);
  p.op(0x8c).op(5);
  p.raw('t').raw('o').raw('r').raw('c').raw('h');
  p.op(0x8c).op(11);
  for (const char c : std::string("LongStorage")) p.raw(c);
  p.op(0x93).op('0').integer(7).op('s').stop();
  return p.str();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const fs::path dir = argv[1];
  fs::create_directories(dir / "zip");
  fs::create_directories(dir / "pickle");
  const std::string two = weightmap::test::pytorch_pickle_two_tensors();
  write(dir / "zip" / "seed-plain.pt", weightmap::test::pytorch_checkpoint(two));
  write(dir / "zip" / "seed-zip64.pt", weightmap::test::pytorch_checkpoint(two, true));
  write(dir / "zip" / "seed-nested.pt", weightmap::test::pytorch_checkpoint(nested_pickle()));
  write(dir / "pickle" / "seed-two.pkl", two);
  write(dir / "pickle" / "seed-nested.pkl", nested_pickle());
  write(dir / "pickle" / "seed-protocol4.pkl", protocol4_pickle());
  return 0;
}
