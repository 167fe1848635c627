// `weightmap inspect`: the text summary, tensor rows, metadata lines, JSON and exit codes.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "cli/human_bytes.hpp"
#include "cli/inspect.hpp"
#include "cli/inspect_text.hpp"
#include "cli/model_json.hpp"
#include "support/cli_run.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"

namespace weightmap::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

struct FixtureTensor {
  std::string name;
  std::string dtype;  // safetensors spelling
  std::vector<std::uint64_t> shape;
  std::uint64_t nbytes;
};

// A safetensors file by hand: 8-byte little-endian header length, the JSON header padded
// with spaces so the data starts at `data_start`, then the tensors back to back.
std::string safetensors_bytes(const std::vector<FixtureTensor>& tensors,
                              const std::string& metadata_json, std::uint64_t data_start) {
  std::string header = "{";
  if (!metadata_json.empty()) header += fmt::format(R"("__metadata__":{})", metadata_json);
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (header.size() > 1) header += ',';
    header += fmt::format(R"("{}":{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}})", t.name,
                          t.dtype, fmt::join(t.shape, ","), offset, offset + t.nbytes);
    offset += t.nbytes;
  }
  header += '}';
  if (header.size() + 8 > data_start) throw std::runtime_error("fixture header too long");
  header.append(data_start - 8 - header.size(), ' ');
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) {
    bytes[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
  }
  bytes += header;
  for (std::uint64_t i = 0; i < offset; ++i) bytes += static_cast<char>(i & 0x7F);
  return bytes;
}

// Data starts at byte 256: a.weight at 256 (aligned to 256), b.bias at 268 (4), c.scale at
// 280 (8).
const std::vector<FixtureTensor> kTinyTensors = {
    {"a.weight", "F16", {2, 3}, 12},
    {"b.bias", "F32", {3}, 12},
    {"c.scale", "BF16", {}, 2},
};
constexpr std::uint64_t kTinySize = 256 + 26;

class CliInspectTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tiny_ = write_file("tiny.safetensors",
                       safetensors_bytes(kTinyTensors, R"({"format":"pt","note":"a\tb"})", 256));
  }

  std::string write_file(const std::string& name, const std::string& bytes) {
    const auto path = dir_ / name;
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  using Result = test::CliResult;

  static Result inspect(InspectOptions options) {
    std::ostringstream out, err;
    const int code = run_inspect(options, out, err);
    return {code, out.str(), err.str()};
  }

  static Result cli(const std::vector<std::string>& args) { return test::run_cli_captured(args); }

  testing::TempDir dir_;
  std::string tiny_;
};

TEST_F(CliInspectTest, SummaryListsFilesDtypesMetadataCountAndAlignment) {
  const auto result = inspect({.sources = {{tiny_, ""}}});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_EQ(result.err, "");
  EXPECT_EQ(result.out, fmt::format("1 file, 3 tensors, 26 B of tensor data, 2 metadata keys\n"
                                    "\n"
                                    "file  format        size  path\n"
                                    "0     safetensors  282 B  {}\n"
                                    "\n"
                                    "dtype     tensors       bytes\n"
                                    "f32             1        12 B\n"
                                    "f16             1        12 B\n"
                                    "bf16            1         2 B\n"
                                    "\n"
                                    "aligned offsets: 1 of 3 tensors start on a 32-byte "
                                    "boundary, 1 on a 64-byte boundary\n"
                                    "misaligned: 2 tensors are not on a 32-byte boundary (see "
                                    "the align column of --all)\n"
                                    "realign: `weightmap realign {} -o OUT --padding-tensors` "
                                    "makes every tensor mappable for devices that need 32- or "
                                    "64-byte alignment (the CPU maps them as they are)\n",
                                    tiny_, tiny_));
}

TEST_F(CliInspectTest, AllPrintsOneRowPerTensorWithAlignmentOfTheOffset) {
  const auto result = inspect({.sources = {{tiny_, ""}}, .all = true});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\n"
                                    "name      dtype  shape   offset  bytes  align\n"
                                    "a.weight  f16    [2, 3]     256     12    256\n"
                                    "b.bias    f32    [3]        268     12      4\n"
                                    "c.scale   bf16   []         280      2      8\n"));
}

TEST_F(CliInspectTest, FilterPrintsOnlyMatchingRowsAndSaysHowMany) {
  const auto result = inspect({.sources = {{tiny_, ""}}, .filter = "*.b*"});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\n1 of 3 tensors match \"*.b*\"\n"
                                    "name    dtype  shape  offset  bytes  align\n"
                                    "b.bias  f32    [3]       268     12      4\n"));
  EXPECT_THAT(result.out, Not(HasSubstr("a.weight")));

  const auto none = inspect({.sources = {{tiny_, ""}}, .filter = "nothing*"});
  EXPECT_EQ(none.code, 0);
  EXPECT_THAT(none.out, HasSubstr("\n0 of 3 tensors match \"nothing*\"\n"));
  EXPECT_THAT(none.out, Not(HasSubstr("name ")));
}

TEST_F(CliInspectTest, MetadataPrintsKeyEqualsValue) {
  const auto result = inspect({.sources = {{tiny_, ""}}, .metadata = true});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("\nmetadata (2 keys):\n"));
  EXPECT_THAT(result.out, HasSubstr("\n  format = \"pt\"\n"));
  // A tab from the file is shown escaped: metadata cannot move a user's cursor.
  EXPECT_THAT(result.out, HasSubstr("\n  note = \"a\\x09b\"\n"));
}

TEST_F(CliInspectTest, JsonHasFilesTensorsAndMetadata) {
  const auto result = inspect({.sources = {{tiny_, ""}}, .json = true});
  ASSERT_EQ(result.code, 0) << result.err;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(result.out).get(root), simdjson::SUCCESS) << result.out;

  simdjson::dom::array files = root["files"];
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(std::string_view(files.at(0)["path"]), tiny_);
  EXPECT_EQ(std::string_view(files.at(0)["format"]), "safetensors");
  EXPECT_EQ(std::uint64_t(files.at(0)["size"]), kTinySize);

  simdjson::dom::array tensors = root["tensors"];
  ASSERT_EQ(tensors.size(), 3u);
  const std::vector<std::string> names = {"a.weight", "b.bias", "c.scale"};
  const std::vector<std::string> dtypes = {"f16", "f32", "bf16"};
  const std::vector<std::vector<std::uint64_t>> shapes = {{2, 3}, {3}, {}};
  const std::vector<std::uint64_t> offsets = {256, 268, 280};
  const std::vector<std::uint64_t> nbytes = {12, 12, 2};
  for (std::size_t i = 0; i < 3; ++i) {
    simdjson::dom::object tensor = tensors.at(i);
    EXPECT_EQ(tensor.size(), 6u);
    EXPECT_EQ(std::string_view(tensor["name"]), names[i]);
    EXPECT_EQ(std::string_view(tensor["dtype"]), dtypes[i]);
    std::vector<std::uint64_t> shape;
    for (simdjson::dom::element dim : simdjson::dom::array(tensor["shape"])) {
      shape.push_back(std::uint64_t(dim));
    }
    EXPECT_EQ(shape, shapes[i]);
    EXPECT_EQ(std::uint64_t(tensor["file"]), 0u);
    EXPECT_EQ(std::uint64_t(tensor["offset"]), offsets[i]);
    EXPECT_EQ(std::uint64_t(tensor["nbytes"]), nbytes[i]);
  }

  simdjson::dom::object metadata = root["metadata"];
  EXPECT_EQ(metadata.size(), 2u);
  EXPECT_EQ(std::string_view(metadata["format"]), "pt");
  EXPECT_EQ(std::string_view(metadata["note"]), "a\tb");
}

TEST_F(CliInspectTest, JsonAppliesTheFilterToTensors) {
  const auto result = inspect({.sources = {{tiny_, ""}}, .filter = "c.*", .json = true});
  ASSERT_EQ(result.code, 0) << result.err;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(result.out).get(root), simdjson::SUCCESS) << result.out;
  simdjson::dom::array tensors = root["tensors"];
  ASSERT_EQ(tensors.size(), 1u);
  EXPECT_EQ(std::string_view(tensors.at(0)["name"]), "c.scale");
}

TEST_F(CliInspectTest, PrefixAppliesToThePathsThatFollowIt) {
  const auto other =
      write_file("other.safetensors", safetensors_bytes({{"w", "F32", {1}, 4}}, "", 64));
  const auto third =
      write_file("third.safetensors", safetensors_bytes({{"x", "F32", {1}, 4}}, "", 64));
  const auto result =
      cli({"inspect", "--json", "--prefix", "vae.", other, tiny_, "--prefix", "", third});
  ASSERT_EQ(result.code, 0) << result.err;
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(result.out).get(root), simdjson::SUCCESS) << result.out;
  std::vector<std::string> names;
  for (simdjson::dom::element tensor : simdjson::dom::array(root["tensors"])) {
    names.emplace_back(std::string_view(tensor["name"]));
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"vae.w", "vae.a.weight", "vae.b.bias", "vae.c.scale", "x"}));
}

// A GGUF v3 file by hand: typed metadata and one f32 tensor of 4 elements.
class GgufBytes {
 public:
  template <typename T>
  GgufBytes& raw(T value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof value);  // little-endian host
    return *this;
  }
  GgufBytes& str(std::string_view text) {
    raw(std::uint64_t{text.size()});
    bytes_.append(text);
    return *this;
  }
  GgufBytes& key(std::string_view name, MetadataType type) {
    return str(name).raw(static_cast<std::uint32_t>(type));
  }
  std::string padded(std::size_t alignment) const {
    std::string out = bytes_;
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    return out;
  }

 private:
  std::string bytes_;
};

TEST_F(CliInspectTest, GgufMetadataBecomesTypedJsonValues) {
  GgufBytes gguf;
  gguf.raw(std::array<char, 4>{'G', 'G', 'U', 'F'}).raw(std::uint32_t{3});
  gguf.raw(std::uint64_t{1}).raw(std::uint64_t{6});
  gguf.key("f", MetadataType::f32).raw(0.1f);
  gguf.key("u", MetadataType::u64).raw(std::numeric_limits<std::uint64_t>::max());
  gguf.key("i", MetadataType::i8).raw(std::int8_t{-3});
  gguf.key("s", MetadataType::string).str("bad \xFF byte");
  gguf.key("n", MetadataType::f64).raw(-HUGE_VAL);
  gguf.key("a", MetadataType::array).raw(static_cast<std::uint32_t>(MetadataType::boolean));
  gguf.raw(std::uint64_t{2}).raw(std::uint8_t{1}).raw(std::uint8_t{0});
  gguf.str("t").raw(std::uint32_t{1}).raw(std::uint64_t{4}).raw(std::uint32_t{0});
  gguf.raw(std::uint64_t{0});
  const auto path = write_file("m.gguf", gguf.padded(32) + std::string(16, '\0'));

  const auto result = inspect({.sources = {{path, ""}}, .json = true});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr(R"("f": 0.1,)"));
  EXPECT_THAT(result.out, HasSubstr(R"("u": 18446744073709551615,)"));
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(result.out).get(root), simdjson::SUCCESS) << result.out;
  simdjson::dom::object metadata = root["metadata"];
  EXPECT_EQ(static_cast<float>(double(metadata["f"])), 0.1f);
  EXPECT_EQ(std::uint64_t(metadata["u"]), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(std::int64_t(metadata["i"]), -3);
  EXPECT_EQ(std::string_view(metadata["s"]), "bad \xEF\xBF\xBD byte");
  EXPECT_EQ(std::string_view(metadata["n"]), "-inf");
  simdjson::dom::array flags = metadata["a"];
  ASSERT_EQ(flags.size(), 2u);
  EXPECT_TRUE(bool(flags.at(0)));
  EXPECT_FALSE(bool(flags.at(1)));
  simdjson::dom::object tensor = simdjson::dom::array(root["tensors"]).at(0);
  EXPECT_EQ(std::string_view(tensor["dtype"]), "f32");
  EXPECT_EQ(std::uint64_t(tensor["offset"]) % 32, 0u);
  EXPECT_EQ(std::string_view(simdjson::dom::array(root["files"]).at(0)["format"]), "gguf");

  const auto text = inspect({.sources = {{path, ""}}, .metadata = true});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("\n  f = 0.1\n  u = 18446744073709551615\n  i = -3\n"
                                  "  s = \"bad \\xff byte\"\n  n = -inf\n  a = [true, false]\n"));
}

TEST_F(CliInspectTest, SeveralFilesAddAFileColumnAndGroupMetadataByFile) {
  const auto other = write_file("other.safetensors",
                                safetensors_bytes({{"w", "F32", {1}, 4}}, R"({"k":"v"})", 128));
  const auto result =
      inspect({.sources = {{tiny_, ""}, {other, ""}}, .all = true, .metadata = true});
  ASSERT_EQ(result.code, 0) << result.err;
  EXPECT_THAT(result.out, HasSubstr("2 files, 4 tensors, 30 B of tensor data, 3 metadata keys\n"));
  EXPECT_THAT(result.out, HasSubstr("\nmetadata of file 1 (1 key):\n  k = \"v\"\n"));
  EXPECT_THAT(result.out, HasSubstr("\nname      dtype  shape   file  offset  bytes  align\n"));
  EXPECT_THAT(result.out, HasSubstr("\nw         f32    [1]        1     128      4    128\n"));
}

TEST_F(CliInspectTest, MalformedFileIsExitCodeOneWithPathInTheMessage) {
  // The header claims 1000 bytes but the file ends after 20.
  std::string bytes(8, '\0');
  bytes[0] = static_cast<char>(0xE8);
  bytes[1] = 0x03;
  bytes += "{\"a\":{\"dtype\":";
  const auto bad = write_file("bad.safetensors", bytes);
  std::string expected;
  try {
    (void)open_model(bad);
    FAIL() << "open_model accepted a truncated header";
  } catch (const Error& e) {
    expected = fmt::format("weightmap: {}\n", e.what());
  }
  const auto result = inspect({.sources = {{bad, ""}}});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err, expected);
  EXPECT_THAT(result.err, ::testing::StartsWith(fmt::format("weightmap: {}: ", bad)));
}

TEST_F(CliInspectTest, FileOfNoKnownFormatIsExitCodeOne) {
  const auto path = write_file("notes.txt", "hello, world");
  const auto result = cli({"inspect", path});
  EXPECT_EQ(result.code, 1);
  EXPECT_EQ(result.err,
            fmt::format("weightmap: {}: not a model file weightmap can read "
                        "(expected safetensors, GGUF or a PyTorch zip checkpoint) (byte 0)\n",
                        path));
}

TEST_F(CliInspectTest, UsageErrorsAreExitCodeTwo) {
  for (const auto& args : std::vector<std::vector<std::string>>{
           {}, {"inspect"}, {"inspect", "--bogus", tiny_}, {"frobnicate"}}) {
    const auto result = cli(args);
    EXPECT_EQ(result.code, 2) << fmt::format("{}", fmt::join(args, " "));
    EXPECT_THAT(result.err, HasSubstr("Run with --help for more information."));
    EXPECT_EQ(result.out, "");
  }
  EXPECT_THAT(cli({"inspect"}).err, HasSubstr("PATH is required"));
}

TEST_F(CliInspectTest, HelpListsOnlyTheSubcommandsThatExist) {
  const auto help = cli({"--help"});
  EXPECT_EQ(help.code, 0);
  for (const char* command : {"inspect", "sample", "load", "bench", "realign", "cache", "lora"}) {
    EXPECT_THAT(help.out, HasSubstr(fmt::format("  {} ", command))) << command;
  }
  for (const char* later : {"verify"}) {
    EXPECT_THAT(help.out, Not(HasSubstr(fmt::format("  {} ", later)))) << later;
  }
  const auto inspect_help = cli({"inspect", "--help"});
  EXPECT_EQ(inspect_help.code, 0);
  for (const char* option : {"--all", "--filter", "--metadata", "--json", "--prefix", "PATH"}) {
    EXPECT_THAT(inspect_help.out, HasSubstr(option));
  }
}

TEST_F(CliInspectTest, VersionPrintsTheProjectVersion) {
  const auto result = cli({"--version"});
  EXPECT_EQ(result.code, 0);
  EXPECT_EQ(result.out, std::string(WEIGHTMAP_VERSION) + "\n");
}

TEST_F(CliInspectTest, BinaryExitsWithTwoOnUsageErrorsAndOneOnBadFiles) {
  const auto run = [](const std::string& args) {
    const int status =
        std::system((std::string(WEIGHTMAP_CLI_PATH) + " " + args + " >/dev/null 2>&1").c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  EXPECT_EQ(run(""), 2);
  EXPECT_EQ(run("inspect --no-such-option"), 2);
  EXPECT_EQ(run("inspect /nonexistent/model.safetensors"), 1);
  EXPECT_EQ(run("--version"), 0);
}

// Hand-built models: the output of values no safetensors file can hold.

Model model_with_metadata(std::vector<MetadataEntry> metadata) {
  ModelFile file;
  file.path = "m.gguf";
  file.format = FileFormat::gguf;
  file.size = 4096;
  return Model({file}, {}, std::move(metadata));
}

MetadataValue scalar(MetadataType type, decltype(MetadataValue::value) value) {
  MetadataValue v;
  v.type = type;
  v.value = std::move(value);
  return v;
}

MetadataValue array_of(MetadataType element_type, std::vector<MetadataValue> items) {
  MetadataValue v;
  v.type = MetadataType::array;
  v.element_type = element_type;
  v.value = MetadataArray(std::move(items));
  return v;
}

TEST(CliJson, NumbersAreExactAndFloatsRoundTripAsTheirOwnType) {
  EXPECT_EQ(json_value(scalar(MetadataType::u64, std::numeric_limits<std::uint64_t>::max())),
            "18446744073709551615");
  EXPECT_EQ(json_value(scalar(MetadataType::i64, std::numeric_limits<std::int64_t>::min())),
            "-9223372036854775808");
  EXPECT_EQ(json_value(scalar(MetadataType::u32, std::uint64_t{7})), "7");
  // 0.1f widened to double is 0.10000000149011612; printed as an f32 it is 0.1.
  EXPECT_EQ(json_value(scalar(MetadataType::f32, static_cast<double>(0.1f))), "0.1");
  EXPECT_EQ(json_value(scalar(MetadataType::f32, static_cast<double>(1e-6f))), "1e-06");
  EXPECT_EQ(json_value(scalar(MetadataType::f64, 0.1)), "0.1");
  EXPECT_EQ(json_value(scalar(MetadataType::f32, std::nan(""))), "\"nan\"");
  EXPECT_EQ(json_value(scalar(MetadataType::f64, HUGE_VAL)), "\"inf\"");
  EXPECT_EQ(json_value(scalar(MetadataType::f32, -HUGE_VAL)), "\"-inf\"");
  EXPECT_EQ(json_value(scalar(MetadataType::boolean, true)), "true");
  EXPECT_EQ(json_value(array_of(MetadataType::i32, {scalar(MetadataType::i32, std::int64_t{-1}),
                                                    scalar(MetadataType::i32, std::int64_t{2})})),
            "[-1, 2]");
  EXPECT_EQ(json_value(array_of(MetadataType::string, {})), "[]");
}

TEST(CliJson, StringsAreEscapedAndAlwaysValidUtf8) {
  EXPECT_EQ(json_string("plain"), "\"plain\"");
  EXPECT_EQ(json_string("q\"b\\n\nt\t\x01\x7f"), R"("q\"b\\n\nt\t\u0001\u007f")");
  EXPECT_EQ(json_string("caf\xC3\xA9 \xE2\x82\xAC"), "\"caf\xC3\xA9 \xE2\x82\xAC\"");
  // A lone continuation byte, a truncated sequence and an overlong encoding become U+FFFD.
  EXPECT_EQ(json_string("a\x80z"), "\"a\xEF\xBF\xBDz\"");
  EXPECT_EQ(json_string("\xE2\x82"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_EQ(json_string("\xC0\xAF"), "\"\xEF\xBF\xBD\xEF\xBF\xBD\"");
  EXPECT_TRUE(is_valid_utf8(json_string("\xFF\xFE\xED\xA0\x80")));
}

TEST(CliJson, ModelJsonParsesAndKeepsTheFirstValueOfARepeatedKey) {
  ModelFile second;
  second.path = "n.gguf";
  second.format = FileFormat::gguf;
  Model model = model_with_metadata({});
  model = Model({model.files().front(), second}, {},
                {{"general.name", scalar(MetadataType::string, std::string("first")), 0},
                 {"weird\x01key\xFF", scalar(MetadataType::f32, std::nan("")), 0},
                 {"general.name", scalar(MetadataType::string, std::string("second")), 1}});
  std::ostringstream out;
  write_model_json(model, {}, out);
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  ASSERT_EQ(parser.parse(out.str()).get(root), simdjson::SUCCESS) << out.str();
  simdjson::dom::object metadata = root["metadata"];
  EXPECT_EQ(metadata.size(), 2u);
  EXPECT_EQ(std::string_view(metadata["general.name"]), "first");
  EXPECT_EQ(std::string_view(metadata["weird\x01key\xEF\xBF\xBD"]), "nan");
  EXPECT_EQ(simdjson::dom::array(root["tensors"]).size(), 0u);
  EXPECT_EQ(simdjson::dom::array(root["files"]).size(), 2u);
}

TEST(CliText, LongArraysShowTypeLengthAndFirstItems) {
  std::vector<MetadataValue> tokens;
  for (int i = 0; i < 32000; ++i) {
    tokens.push_back(scalar(MetadataType::string, fmt::format("t{}", i)));
  }
  EXPECT_EQ(metadata_value_text(array_of(MetadataType::string, tokens)),
            R"([string x 32000: "t0", "t1", "t2", "t3", ...])");
  EXPECT_EQ(metadata_value_text(array_of(MetadataType::f32,
                                         {scalar(MetadataType::f32, static_cast<double>(0.1f))})),
            "[0.1]");
  EXPECT_EQ(metadata_value_text(scalar(MetadataType::i64, std::int64_t{-5})), "-5");
  EXPECT_EQ(metadata_value_text(scalar(MetadataType::string, std::string("\x1b[2J"))),
            "\"\\x1b[2J\"");
}

TEST(CliText, SizesAlignmentAndShapes) {
  EXPECT_EQ(human_bytes(0), "0 B");
  EXPECT_EQ(human_bytes(1023), "1023 B");
  EXPECT_EQ(human_bytes(1536), "1.5 KiB");
  EXPECT_EQ(human_bytes(5u << 20), "5.0 MiB");
  EXPECT_EQ(human_bytes(std::uint64_t{13} << 30), "13.0 GiB");
  EXPECT_EQ(offset_alignment(0), 4096u);
  EXPECT_EQ(offset_alignment(268), 4u);
  EXPECT_EQ(offset_alignment(3 * 64), 64u);
  EXPECT_EQ(offset_alignment(std::uint64_t{1} << 40), 4096u);
  EXPECT_EQ(shape_text({}), "[]");
  EXPECT_EQ(shape_text({4096, 32}), "[4096, 32]");
}

TEST(CliText, SummarySaysWhenTensorsAreNotAlignedToTheirElementSize) {
  ModelFile file;
  file.path = "m.safetensors";
  file.size = 1000;
  TensorInfo odd{"odd", DType::F32, {2}, 0, 101, 8};
  TensorInfo fine{"fine", DType::Q4_0, {32}, 0, 200, 18};  // blocks of 18 bytes: no rule
  const Model model({file}, {odd, fine}, {});
  std::ostringstream out;
  write_summary(model, out);
  EXPECT_THAT(out.str(),
              HasSubstr("misaligned: 1 tensor is not even on a multiple of the element size\n"));
  EXPECT_THAT(out.str(), HasSubstr("aligned offsets: 0 of 2 tensors start on a 32-byte boundary, "
                                   "0 on a 64-byte boundary\n"));
}

}  // namespace
}  // namespace weightmap::cli
