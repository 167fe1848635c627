// The GGUF reader against files someone else wrote: llama.cpp's vocabulary GGUF files
// (compared with what gguf-py's GGUFReader reports) and files written at test time by
// gguf-py's GGUFWriter (compared with what the writer was told to write).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.hpp"
#include "format/readers.hpp"
#include "io/file_reader.hpp"
#include "support/cli_run.hpp"
#include "support/gguf_bytes.hpp"
#include "support/shell_command.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/dtype.hpp"
#include "weightmap/error.hpp"

namespace weightmap {
namespace {

namespace fs = std::filesystem;

const fs::path kLlamaDir = WEIGHTMAP_LLAMA_SRC_DIR;
const fs::path kModelsDir = kLlamaDir / "models";

using test::run_python_script;
using testing::TempDir;

std::vector<fs::path> vocab_files() {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(kModelsDir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("ggml-vocab-") && entry.path().extension() == ".gguf") {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

FileIndex read_file(const fs::path& path) {
  const io::FileReader reader(path.string());
  return format::read_gguf(reader);
}

// gguf-py's name of a value's type: "UINT32", "ARRAY[STRING]", "ARRAY[ARRAY[INT32]]".
std::string gguf_py_type_name(const MetadataValue& value) {
  static constexpr std::array<std::string_view, 13> kNames = {
      "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",  "FLOAT32",
      "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64"};
  if (value.type != MetadataType::array)
    return std::string(kNames.at(static_cast<int>(value.type)));
  const auto& items = std::get<MetadataArray>(value.value);
  if (value.element_type == MetadataType::array && !items.empty()) {
    return "ARRAY[" + gguf_py_type_name(items.front()) + "]";
  }
  return "ARRAY[" + std::string(kNames.at(static_cast<int>(value.element_type))) + "]";
}

// Floats in the JSON are numbers, or "nan" / "inf" / "-inf".
double json_float(simdjson::dom::element element) {
  if (element.is_string()) {
    const std::string_view text = element.get_string();
    if (text == "nan") return std::nan("");
    return text == "inf" ? HUGE_VAL : -HUGE_VAL;
  }
  return element.get_double();
}

bool same_float(double ours, double expected, MetadataType type) {
  if (std::isnan(ours) || std::isnan(expected)) return std::isnan(ours) && std::isnan(expected);
  if (type == MetadataType::f32) {
    return static_cast<float>(ours) == static_cast<float>(expected);
  }
  return ours == expected;
}

// Compares one value with its JSON; returns a description of the first difference.
std::optional<std::string> value_difference(const MetadataValue& ours,
                                            simdjson::dom::element expected) {
  switch (ours.type) {
    case MetadataType::u8:
    case MetadataType::u16:
    case MetadataType::u32:
    case MetadataType::u64: {
      const std::uint64_t want = expected.get_uint64();
      const auto got = std::get<std::uint64_t>(ours.value);
      if (got != want) return fmt::format("{} != {}", got, want);
      return std::nullopt;
    }
    case MetadataType::i8:
    case MetadataType::i16:
    case MetadataType::i32:
    case MetadataType::i64: {
      const std::int64_t want = expected.get_int64();
      const auto got = std::get<std::int64_t>(ours.value);
      if (got != want) return fmt::format("{} != {}", got, want);
      return std::nullopt;
    }
    case MetadataType::f32:
    case MetadataType::f64: {
      const double want = json_float(expected);
      const double got = std::get<double>(ours.value);
      if (!same_float(got, want, ours.type)) return fmt::format("{} != {}", got, want);
      return std::nullopt;
    }
    case MetadataType::boolean: {
      const bool want = expected.get_bool();
      if (std::get<bool>(ours.value) != want) return fmt::format("bool != {}", want);
      return std::nullopt;
    }
    case MetadataType::string: {
      const std::string_view want = expected.get_string();
      const auto& got = std::get<std::string>(ours.value);
      if (got != want) return fmt::format("\"{}\" != \"{}\"", printable(got), printable(want));
      return std::nullopt;
    }
    case MetadataType::array: {
      const simdjson::dom::array want = expected.get_array();
      const auto& got = std::get<MetadataArray>(ours.value);
      if (got.size() != want.size()) {
        return fmt::format("{} elements != {}", got.size(), want.size());
      }
      std::size_t i = 0;
      for (const simdjson::dom::element item : want) {
        if (got[i].type != ours.element_type) return fmt::format("[{}] has another type", i);
        if (auto difference = value_difference(got[i], item)) {
          return fmt::format("[{}]: {}", i, *difference);
        }
        ++i;
      }
      return std::nullopt;
    }
  }
  return "unknown type";
}

// Compares a value of `weightmap inspect --json` with gguf-py's, whose type is `type_name`
// ("FLOAT32", "ARRAY[STRING]", ...); returns a description of the first difference.
std::optional<std::string> json_value_difference(simdjson::dom::element ours,
                                                 simdjson::dom::element expected,
                                                 std::string_view type_name) {
  if (type_name.starts_with("ARRAY[")) {
    const std::string_view element_type = type_name.substr(6, type_name.size() - 7);
    simdjson::dom::array got;
    if (ours.get_array().get(got) != simdjson::SUCCESS) return "not an array";
    const simdjson::dom::array want = expected.get_array();
    if (got.size() != want.size()) return fmt::format("{} elements != {}", got.size(), want.size());
    auto got_item = got.begin();
    std::size_t i = 0;
    for (const simdjson::dom::element item : want) {
      if (auto difference = json_value_difference(*got_item, item, element_type)) {
        return fmt::format("[{}]: {}", i, *difference);
      }
      ++got_item, ++i;
    }
    return std::nullopt;
  }
  if (type_name == "FLOAT32" || type_name == "FLOAT64") {
    const double got = json_float(ours);
    const double want = json_float(expected);
    const auto type = type_name == "FLOAT32" ? MetadataType::f32 : MetadataType::f64;
    if (!same_float(got, want, type)) return fmt::format("{} != {}", got, want);
    return std::nullopt;
  }
  // Integers, bools and strings: the same JSON text.
  if (simdjson::to_string(ours) != simdjson::to_string(expected)) {
    return fmt::format("{} != {}", simdjson::to_string(ours), simdjson::to_string(expected));
  }
  return std::nullopt;
}

// `weightmap inspect --json FILE`, through the same function the binary runs.
std::string inspect_json(const fs::path& file) {
  const auto result = test::run_cli_captured({"inspect", "--json", file.string()});
  EXPECT_EQ(result.code, cli::kExitOk) << result.err;
  return result.out;
}

// `expected` is a list of [key, type_name, value], in file order.
void expect_metadata_matches(const FileIndex& index, simdjson::dom::array expected) {
  ASSERT_EQ(index.metadata.size(), expected.size());
  std::size_t i = 0;
  for (const simdjson::dom::array entry : expected) {
    const auto& [key, value] = index.metadata[i++];
    const std::string_view want_key = entry.at(0).get_string();
    ASSERT_EQ(key, want_key) << "key #" << i - 1;
    EXPECT_EQ(gguf_py_type_name(value), std::string_view(entry.at(1).get_string())) << key;
    if (const auto difference = value_difference(value, entry.at(2))) {
      ADD_FAILURE() << key << ": " << *difference;
    }
  }
}

// `expected` is a list of {name, type, shape, offset, n_bytes}, in file order.
void expect_tensors_match(const FileIndex& index, simdjson::dom::array expected) {
  ASSERT_EQ(index.tensors.size(), expected.size());
  std::size_t i = 0;
  for (const simdjson::dom::element want : expected) {
    const TensorInfo& tensor = index.tensors[i++];
    EXPECT_EQ(tensor.name, std::string_view(want["name"].get_string()));
    EXPECT_EQ(static_cast<std::uint64_t>(tensor.dtype), std::uint64_t(want["type"].get_uint64()))
        << tensor.name;
    std::vector<std::uint64_t> shape;
    for (const simdjson::dom::element dim : want["shape"].get_array()) {
      shape.push_back(dim.get_uint64());
    }
    EXPECT_EQ(tensor.shape, shape) << tensor.name;
    EXPECT_EQ(tensor.offset, std::uint64_t(want["offset"].get_uint64())) << tensor.name;
    EXPECT_EQ(tensor.nbytes, std::uint64_t(want["n_bytes"].get_uint64())) << tensor.name;
    EXPECT_EQ(tensor.file, 0u);
  }
}

// --- the reader's buffering ---

// The reader pulls the header in through a window of a few hundred KiB: strings longer than
// the window and fields split by its edge must read the same as any other.
TEST(GgufReadWindow, LongStringsAndFieldsAcrossItsEdgesReadIntact) {
  const std::string long_text(700'000, 'x');
  constexpr std::uint64_t kCount = 300'000;
  test::GgufBytes file;
  file.header(1, 3).kv_string("test.long", long_text + "!");
  file.str("test.numbers").type(test::GgufType::array).type(test::GgufType::u32).u64(kCount);
  for (std::uint32_t i = 0; i < kCount; ++i) file.u32(i * 7);
  file.str("test.words").type(test::GgufType::array).type(test::GgufType::string).u64(kCount);
  for (std::uint32_t i = 0; i < kCount; ++i) file.str(std::to_string(i));
  file.tensor_info("w", {8}, 0, 0).pad_to(32).zeros(32);

  const io::MemoryByteSource source("window.gguf", file.span());
  const FileIndex index = format::read_gguf(source);
  ASSERT_EQ(index.metadata.size(), 3u);
  EXPECT_EQ(std::get<std::string>(index.metadata[0].second.value), long_text + "!");
  const auto& numbers = std::get<MetadataArray>(index.metadata[1].second.value);
  const auto& words = std::get<MetadataArray>(index.metadata[2].second.value);
  ASSERT_EQ(numbers.size(), kCount);
  ASSERT_EQ(words.size(), kCount);
  for (std::uint32_t i = 0; i < kCount; ++i) {
    ASSERT_EQ(std::get<std::uint64_t>(numbers[i].value), std::uint64_t{i} * 7) << i;
    ASSERT_EQ(std::get<std::string>(words[i].value), std::to_string(i)) << i;
  }
  ASSERT_EQ(index.tensors.size(), 1u);
  EXPECT_EQ(index.tensors[0].offset, index.data_offset);
  EXPECT_EQ(index.tensors[0].offset + 32, file.size());
}

// --- llama.cpp's vocabulary files, against gguf-py's GGUFReader ---

TEST(GgufVocabFiles, AreFetched) {
  ASSERT_TRUE(fs::is_directory(kModelsDir))
      << kModelsDir << " is missing: run scripts/fetch-llama.sh to fetch llama.cpp's source";
  EXPECT_GE(vocab_files().size(), 10u) << "expected llama.cpp's ggml-vocab-*.gguf files in "
                                       << kModelsDir << ": run scripts/fetch-llama.sh";
}

class GgufVocabFile : public ::testing::TestWithParam<fs::path> {};

// One test per file, so each runs the (slow) Python reader once and ctest can run them in
// parallel.
TEST_P(GgufVocabFile, CountsKeysValuesAndTensorsMatchGgufPyReader) {
  const fs::path& file = GetParam();
  const TempDir out;
  if (const auto failure =
          run_python_script("gguf_dump.py", {out.path().string(), file.string()})) {
    FAIL() << *failure;
  }
  simdjson::dom::parser parser;
  const simdjson::dom::element dump =
      parser.load((out.path() / (file.filename().string() + ".json")).string());

  const FileIndex index = read_file(file);
  EXPECT_EQ(index.format, FileFormat::gguf);
  EXPECT_EQ(index.tensors.size(), std::uint64_t(dump["tensor_count"].get_uint64()));
  EXPECT_EQ(index.metadata.size(), std::uint64_t(dump["kv_count"].get_uint64()));
  EXPECT_EQ(index.alignment, std::uint64_t(dump["alignment"].get_uint64()));
  EXPECT_EQ(index.data_offset, std::uint64_t(dump["data_offset"].get_uint64()));
  expect_metadata_matches(index, dump["kv"].get_array());
  expect_tensors_match(index, dump["tensors"].get_array());

  // What a user sees: `weightmap inspect --json` agrees with gguf-py too.
  simdjson::dom::parser cli_parser;
  const simdjson::padded_string cli_text(inspect_json(file));
  const simdjson::dom::element cli_json = cli_parser.parse(cli_text);
  EXPECT_EQ(simdjson::dom::array(cli_json["files"]).size(), 1u);
  EXPECT_EQ(std::string_view(cli_json["files"].at(0)["format"].get_string()), "gguf");
  const simdjson::dom::array cli_tensors = cli_json["tensors"];
  EXPECT_EQ(cli_tensors.size(), std::uint64_t(dump["tensor_count"].get_uint64()));
  const simdjson::dom::object cli_metadata = cli_json["metadata"];
  EXPECT_EQ(cli_metadata.size(), std::uint64_t(dump["kv_count"].get_uint64()));
  for (const simdjson::dom::array entry : dump["kv"].get_array()) {
    const std::string_view key = entry.at(0).get_string();
    simdjson::dom::element value;
    ASSERT_EQ(cli_metadata.at_key(key).get(value), simdjson::SUCCESS) << key;
    if (const auto difference =
            json_value_difference(value, entry.at(2), std::string_view(entry.at(1).get_string()))) {
      ADD_FAILURE() << "inspect --json, " << key << ": " << *difference;
    }
  }
}

std::string test_name_of(const fs::path& file) {
  std::string name = file.stem().string().substr(std::string_view("ggml-vocab-").size());
  std::replace_if(
      name.begin(), name.end(), [](char c) { return !std::isalnum(c); }, '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Llama, GgufVocabFile, ::testing::ValuesIn(vocab_files()),
                         [](const auto& param_info) { return test_name_of(param_info.param); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GgufVocabFile);  // GgufVocabFiles.AreFetched fails

// --- files written by gguf-py's GGUFWriter ---

class GgufWrittenByGgufPy : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    write_failure_ = run_python_script("gguf_write_all_types.py", {dir_->path().string()});
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    if (write_failure_) FAIL() << *write_failure_;
  }

  static fs::path path(const std::string& name) { return dir_->path() / name; }
  simdjson::dom::element manifest(const std::string& name) {
    return parser_.load(path(name + ".json").string());
  }

  static TempDir* dir_;
  static std::optional<std::string> write_failure_;
  simdjson::dom::parser parser_;
};

TempDir* GgufWrittenByGgufPy::dir_ = nullptr;
std::optional<std::string> GgufWrittenByGgufPy::write_failure_;

TEST_F(GgufWrittenByGgufPy, TensorsOfEveryTypeHaveDtypeShapeOffsetAndSize) {
  const FileIndex index = read_file(path("all_types.gguf"));
  const simdjson::dom::element want = manifest("all_types.gguf");
  EXPECT_EQ(index.alignment, 32u);
  EXPECT_EQ(index.data_offset, std::uint64_t(want["data_offset"].get_uint64()));
  expect_tensors_match(index, want["tensors"].get_array());
  expect_metadata_matches(index, want["kv"].get_array());
}

TEST_F(GgufWrittenByGgufPy, EveryGgmlTypeOfTheDtypeTableIsCovered) {
  const FileIndex index = read_file(path("all_types.gguf"));
  for (const DTypeInfo& info : all_dtypes()) {
    // Q8_1: gguf-py's block size disagrees with ggml's (see gguf_write_all_types.py); the
    // ggml adapter's tests check our table against ggml itself.
    if (!info.in_ggml || info.id == DType::Q8_1) continue;
    EXPECT_TRUE(std::any_of(index.tensors.begin(), index.tensors.end(),
                            [&](const TensorInfo& t) { return t.dtype == info.id; }))
        << "gguf-py wrote no tensor of type " << info.name;
  }
}

TEST_F(GgufWrittenByGgufPy, Alignment64PlacesEveryTensorOn64Bytes) {
  const FileIndex index = read_file(path("aligned64.gguf"));
  const simdjson::dom::element want = manifest("aligned64.gguf");
  EXPECT_EQ(index.alignment, 64u);
  EXPECT_EQ(index.data_offset % 64, 0u);
  EXPECT_EQ(index.data_offset, std::uint64_t(want["data_offset"].get_uint64()));
  expect_tensors_match(index, want["tensors"].get_array());
  expect_metadata_matches(index, want["kv"].get_array());
  for (const TensorInfo& tensor : index.tensors) EXPECT_EQ(tensor.offset % 64, 0u) << tensor.name;
}

TEST_F(GgufWrittenByGgufPy, MetadataOfEveryValueTypeIncludingNestedArrays) {
  const FileIndex index = read_file(path("metadata.gguf"));
  EXPECT_TRUE(index.tensors.empty());
  expect_metadata_matches(index, manifest("metadata.gguf")["kv"].get_array());

  // A few values spelled out, so a bug shared by the manifest and the comparison shows.
  const auto find = [&](std::string_view key) -> const MetadataValue& {
    const auto it = std::find_if(index.metadata.begin(), index.metadata.end(),
                                 [&](const auto& kv) { return kv.first == key; });
    EXPECT_NE(it, index.metadata.end()) << key;
    return it->second;
  };
  EXPECT_EQ(std::get<std::uint64_t>(find("test.u64").value), UINT64_MAX);
  EXPECT_EQ(std::get<std::int64_t>(find("test.i64").value), INT64_MIN);
  EXPECT_EQ(std::get<double>(find("test.f32").value), static_cast<double>(0.1f));
  EXPECT_EQ(std::get<double>(find("test.f64").value), 0.1);
  EXPECT_EQ(std::get<std::string>(find("test.string").value), "h\u00e9llo \u2603 \U0001f600");
  const MetadataValue& nested = find("test.array_nested");
  EXPECT_EQ(nested.element_type, MetadataType::array);
  const auto& inner = std::get<MetadataArray>(nested.value);
  ASSERT_EQ(inner.size(), 2u);
  EXPECT_EQ(inner[1].element_type, MetadataType::i32);
  EXPECT_EQ(std::get<std::int64_t>(std::get<MetadataArray>(inner[1].value).at(0).value), 3);
}

TEST_F(GgufWrittenByGgufPy, MetadataMatchesGgufPyReaderToo) {
  const TempDir out;
  if (const auto failure = run_python_script(
          "gguf_dump.py", {out.path().string(), path("metadata.gguf").string()})) {
    FAIL() << *failure;
  }
  simdjson::dom::parser parser;
  const simdjson::dom::element dump = parser.load((out.path() / "metadata.gguf.json").string());
  expect_metadata_matches(read_file(path("metadata.gguf")), dump["kv"].get_array());
}

}  // namespace
}  // namespace weightmap
