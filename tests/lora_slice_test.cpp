// LoRA modules on slices of fused tensors (q, k and v of Flux's qkv, the MLP part of its
// linear1) in all three uses: in place on copy-on-write pages (and on loaded buffers) with
// undo, merged into a file, and as runtime deltas. Results are compared with a reference
// merge computed by numpy (tests/python/lora_reference_merge.py) within one ulp of the base
// type (see lora_slice_fixtures.hpp for why one ulp holds), rows no module patches bit for
// bit, and undo with the file's bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "lora_slice_fixtures.hpp"
#include "support/temp_dir.hpp"
#include "weightmap/error.hpp"
#include "weightmap/lora.hpp"

namespace weightmap {
namespace {

using namespace lora_slice_test;
using testing::TempDir;

using Reference = std::map<std::string, std::vector<double>>;

struct SliceFixture {
  TempDir dir;
  DType dtype;
  Model base;
  std::shared_ptr<const LoraFile> a, b;
  LoraUse use_a, use_b;

  explicit SliceFixture(DType type) : dtype(type) {
    write_base(dir / "base.safetensors", dtype);
    base = open_model(dir / "base.safetensors");
    a = write_lora(dir.path().string(), kLoraA, 100);
    b = write_lora(dir.path().string(), kLoraB, 200);
    use_a = {a, slice_match(*a, kLoraA, base), kLoraA.multiplier};
    use_b = {b, slice_match(*b, kLoraB, base), kLoraB.multiplier};
  }

  Reference reference(const std::string& name, const std::vector<const SliceLora*>& loras) const {
    return reference_merge(dir / "base.safetensors", dir.path().string(), name, loras);
  }

  LoadedModel load_model(bool mmap) const {
    const std::vector<LoraUse> uses = {use_a, use_b};
    auto requests = lora_requests(base, uses);
    for (auto& request : requests) request.device.alignment = 1;
    LoadOptions options;
    options.mode = mmap ? weightmap::LoadMode::mmap : weightmap::LoadMode::read;
    return load(base, requests, options);
  }

  std::vector<std::byte> file_bytes(const std::string& path, const TensorInfo& info) const {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(info.offset));
    std::vector<std::byte> out(static_cast<std::size_t>(info.nbytes));
    in.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
    return out;
  }

  std::vector<std::byte> base_bytes(const std::string& tensor) const {
    return file_bytes(dir / "base.safetensors", *base.find(tensor));
  }

  // Every tensor within one ulp of `reference`; rows no module of `loras` patches equal to
  // the base file's bytes. Returns how many elements the LoRAs moved by two ulps or more
  // (what a misplaced delta would have to get past).
  std::size_t expect_reference(
      const std::function<std::vector<std::byte>(const std::string&)>& bytes_of,
      const Reference& reference, const std::vector<const SliceLora*>& loras,
      const std::string& when) const {
    std::size_t moved = 0;
    for (const BaseShape& shape : kBase) {
      const auto bytes = bytes_of(shape.name);
      const auto file = base_bytes(shape.name);
      const auto values = lora_test::as_floats(dtype, bytes);
      const auto before = lora_test::as_floats(dtype, file);
      const auto& want = reference.at(shape.name);
      const auto untouched = untouched_rows(shape.name, shape.rows, loras);
      const std::uint64_t row_bytes = *dtype_bytes_for(dtype, kDim);
      std::size_t off_by_more = 0;
      for (std::uint64_t r = 0; r < shape.rows; ++r) {
        if (untouched[r]) {
          EXPECT_TRUE(std::equal(bytes.begin() + static_cast<std::ptrdiff_t>(r * row_bytes),
                                 bytes.begin() + static_cast<std::ptrdiff_t>((r + 1) * row_bytes),
                                 file.begin() + static_cast<std::ptrdiff_t>(r * row_bytes)))
              << when << ": " << shape.name << " row " << r << " is patched by no module";
          continue;
        }
        for (std::uint64_t c = 0; c < kDim; ++c) {
          const auto e = static_cast<std::size_t>(r * kDim + c);
          if (ulps_apart(dtype, values[e], want[e]) > 1) ++off_by_more;
          if (ulps_apart(dtype, before[e], want[e]) >= 2) ++moved;
        }
      }
      EXPECT_EQ(off_by_more, 0u) << when << ": elements of " << shape.name
                                 << " more than one ulp from the reference";
    }
    return moved;
  }
};

std::function<std::vector<std::byte>(const std::string&)> bytes_in(const LoadedModel& loaded) {
  return [&loaded](const std::string& name) {
    const auto bytes = loaded.find(name)->bytes;
    return std::vector<std::byte>(bytes.begin(), bytes.end());
  };
}

class LoraSlices : public ::testing::TestWithParam<DType> {};

std::string dtype_test_name(const ::testing::TestParamInfo<DType>& info) {
  return std::string(dtype_name(info.param));
}

TEST_P(LoraSlices, InPlaceSlicesComposeMatchTheReferenceAndUndoGivesTheFileBack) {
  const SliceFixture f(GetParam());
  const Reference ref_a = f.reference("ref_a", {&kLoraA});
  const Reference ref_ab = f.reference("ref_ab", {&kLoraA, &kLoraB});
  const Reference ref_b = f.reference("ref_b", {&kLoraB});
  for (const bool mmap : {true, false}) {
    const std::string how = mmap ? "mapped copy-on-write" : "loaded";
    LoadedModel loaded = f.load_model(mmap);
    if (mmap) {
      EXPECT_EQ(loaded.find(kQkv)->mapping->access(), Access::copy_on_write);
    }
    LoraPatcher patcher(f.base, loaded);
    const LoraId id_a = patcher.apply(f.use_a);
    const std::size_t moved = f.expect_reference(bytes_in(loaded), ref_a, {&kLoraA}, how + ", A");
    EXPECT_GT(moved, 100u) << "the LoRA must move elements by more than the tolerance";
    patcher.apply(f.use_b);
    f.expect_reference(bytes_in(loaded), ref_ab, {&kLoraA, &kLoraB}, how + ", A then B");

    // Undoing A leaves B on its slices: within the reference, and bit for bit what applying
    // B alone gives.
    patcher.undo(id_a);
    f.expect_reference(bytes_in(loaded), ref_b, {&kLoraB}, how + ", A undone");
    LoadedModel only_b = f.load_model(mmap);
    LoraPatcher(f.base, only_b).apply(f.use_b);
    for (const BaseShape& shape : kBase) {
      const auto got = loaded.find(shape.name)->bytes;
      const auto want = only_b.find(shape.name)->bytes;
      EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end()))
          << how << ": " << shape.name << " after undoing A differs from B alone";
    }

    patcher.undo_all();
    for (const BaseShape& shape : kBase) {
      const auto got = loaded.find(shape.name)->bytes;
      const auto file = f.base_bytes(shape.name);
      EXPECT_TRUE(std::equal(got.begin(), got.end(), file.begin(), file.end()))
          << how << ": " << shape.name << " differs from the file after undo";
    }
  }
}

TEST_P(LoraSlices, MergedSlicesMatchTheReferenceAndTheInPlacePatch) {
  const SliceFixture f(GetParam());
  const Reference ref_ab = f.reference("ref_ab", {&kLoraA, &kLoraB});
  const std::vector<LoraUse> uses = {f.use_a, f.use_b};
  const std::string merged_path = f.dir / "merged.safetensors";
  LoraMergeOptions options;
  options.chunk_bytes = 1000;  // chunk edges inside rows and inside slices
  write_merged_model(f.base, uses, merged_path, options);
  const Model merged = open_model(merged_path);
  const auto merged_bytes = [&](const std::string& name) {
    return f.file_bytes(merged_path, *merged.find(name));
  };
  f.expect_reference(merged_bytes, ref_ab, {&kLoraA, &kLoraB}, "merged");

  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  for (const LoraUse& use : uses) patcher.apply(use);
  for (const BaseShape& shape : kBase) {
    const auto got = merged_bytes(shape.name);
    const auto want = loaded.find(shape.name)->bytes;
    EXPECT_TRUE(std::equal(got.begin(), got.end(), want.begin(), want.end()))
        << shape.name << ": the merge and the in-place patch differ";
  }
}

// The step between values in [0.5, 1), where every weight of the fixture lies.
double step_in_half_to_one(DType dtype) {
  switch (dtype) {
    case DType::F32: return std::ldexp(1.0, -24);
    case DType::F16: return std::ldexp(1.0, -11);
    default: return std::ldexp(1.0, -8);  // bf16
  }
}

// y = W x (+ the deltas as an engine adds them: on rows [row_begin, row_begin + rows) of y),
// in double: outputs of every row of one tensor for one input.
std::vector<double> product(const std::vector<float>& w, std::uint64_t rows, std::uint64_t cols,
                            const std::vector<float>& x, const std::vector<LoraDelta>* deltas) {
  std::vector<double> y(static_cast<std::size_t>(rows), 0.0);
  for (std::uint64_t r = 0; r < rows; ++r) {
    for (std::uint64_t c = 0; c < cols; ++c) y[r] += double{w[r * cols + c]} * x[c];
  }
  for (const LoraDelta& d : deltas ? *deltas : std::vector<LoraDelta>()) {
    EXPECT_EQ(d.base_rows, rows);
    EXPECT_EQ(d.cols, cols);
    std::vector<double> down_x(static_cast<std::size_t>(d.rank), 0.0);
    for (std::uint64_t k = 0; k < d.rank; ++k) {
      for (std::uint64_t c = 0; c < cols; ++c) down_x[k] += double{d.down[k * cols + c]} * x[c];
    }
    for (std::uint64_t i = 0; i < d.rows; ++i) {
      double sum = 0;
      for (std::uint64_t k = 0; k < d.rank; ++k) sum += double{d.up[i * d.rank + k]} * down_x[k];
      y[d.row_begin + i] += double{d.scale} * sum;
    }
  }
  return y;
}

// Runtime deltas name their rows, and y = W x + the deltas on those rows equals the merged
// weights' W' x within sum_c u |x_c| per output (u the step of the base type in [0.5, 1)):
// each merged weight is within one step of W + delta (see lora_slice_fixtures.hpp). The
// products here are in double (2^-53), and the delta's f32 scale is what the merge used too;
// 2^-28 sum |x| covers both. Rows no module patches give the same outputs exactly.
TEST_P(LoraSlices, RuntimeDeltasAddToTheirRowsAndGiveTheMergedOutputs) {
  const SliceFixture f(GetParam());
  const std::vector<LoraUse> uses = {f.use_a, f.use_b};
  const auto deltas = lora_runtime_deltas(uses);
  const auto& qkv = deltas.at(kQkv);
  ASSERT_EQ(qkv.size(), 4u);  // A's q, k, v, then B's
  const std::vector<std::uint64_t> begins = {0, kDim, 2 * kDim, 20};
  const std::vector<std::uint64_t> rows = {kDim, kDim, kDim, 80};
  for (std::size_t i = 0; i < qkv.size(); ++i) {
    EXPECT_EQ(qkv[i].row_begin, begins[i]) << i;
    EXPECT_EQ(qkv[i].rows, rows[i]) << i;
    EXPECT_EQ(qkv[i].base_rows, 3 * kDim) << i;
    EXPECT_EQ(qkv[i].up.size(), rows[i] * qkv[i].rank) << i;
  }
  EXPECT_EQ(deltas.at(kLinear1)[0].row_begin, 3 * kDim);
  EXPECT_EQ(deltas.at(kLinear1)[0].rows, kMlp);
  EXPECT_EQ(deltas.at(kBase[0].name)[0].row_begin, 0u);
  EXPECT_EQ(deltas.at(kBase[0].name)[0].rows, kDim);

  LoadedModel merged = f.load_model(true);
  LoraPatcher patcher(f.base, merged);
  for (const LoraUse& use : uses) patcher.apply(use);
  const auto x = lora_test::random_values(kDim, 7, 1.0f);
  double sum_x = 0;
  for (const float v : x) sum_x += std::abs(double{v});
  const double bound = (step_in_half_to_one(f.dtype) + std::ldexp(1.0, -28)) * sum_x;
  double largest_change = 0;
  for (const BaseShape& shape : kBase) {
    const auto w = lora_test::as_floats(f.dtype, f.base_bytes(shape.name));
    const auto w_merged = lora_test::as_floats(f.dtype, merged.find(shape.name)->bytes);
    const auto it = deltas.find(shape.name);
    const auto y_runtime =
        product(w, shape.rows, kDim, x, it == deltas.end() ? nullptr : &it->second);
    const auto y_merged = product(w_merged, shape.rows, kDim, x, nullptr);
    const auto y_base = product(w, shape.rows, kDim, x, nullptr);
    const auto untouched = untouched_rows(shape.name, shape.rows, {&kLoraA, &kLoraB});
    for (std::size_t r = 0; r < y_runtime.size(); ++r) {
      if (untouched[r]) {
        EXPECT_EQ(y_runtime[r], y_base[r]) << shape.name << " row " << r;
        EXPECT_EQ(y_merged[r], y_base[r]) << shape.name << " row " << r;
      } else {
        EXPECT_NEAR(y_runtime[r], y_merged[r], bound) << shape.name << " row " << r;
      }
      largest_change = std::max(largest_change, std::abs(y_runtime[r] - y_base[r]));
    }
  }
  // bf16 rounds the merged weights by up to 2^-8, about what the deltas change: the bound is
  // only well below the LoRAs' effect for f32 and f16.
  if (f.dtype != DType::BF16) {
    EXPECT_GT(largest_change, 4 * bound);
  }
}

INSTANTIATE_TEST_SUITE_P(BaseTypes, LoraSlices,
                         ::testing::Values(DType::F32, DType::F16, DType::BF16), dtype_test_name);

// A target whose rows do not fit: out of the tensor, or not the rows of its up factor.
struct BadSlice {
  std::size_t target;  // index into A's targets
  std::uint64_t row_begin, row_count;
  std::string message;
};

void expect_refused_everywhere(const BadSlice& bad) {
  const SliceFixture f(DType::F16);
  LoraUse use = f.use_a;
  use.match.targets[bad.target].row_begin = bad.row_begin;
  use.match.targets[bad.target].row_count = bad.row_count;
  const std::string what = fmt::format("{}: {} (tensor {})", f.a->path(), bad.message,
                                       use.match.targets[bad.target].base_tensor);
  const auto expect_error = [&](const std::function<void()>& run, const std::string& where) {
    try {
      run();
      ADD_FAILURE() << where << ": no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << where;
      EXPECT_EQ(std::string(e.what()), what) << where;
    }
  };

  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  expect_error([&] { patcher.apply(use); }, "apply");
  EXPECT_TRUE(patcher.applied().empty());
  for (const BaseShape& shape : kBase) {  // checked before the first write
    const auto got = loaded.find(shape.name)->bytes;
    const auto file = f.base_bytes(shape.name);
    EXPECT_TRUE(std::equal(got.begin(), got.end(), file.begin(), file.end())) << shape.name;
  }
  const std::string merged = f.dir / "merged.safetensors";
  expect_error([&] { write_merged_model(f.base, std::span(&use, 1), merged); }, "merge");
  EXPECT_FALSE(std::filesystem::exists(merged));
  expect_error([&] { lora_runtime_deltas(std::span(&use, 1)); }, "runtime deltas");
}

TEST(LoraSliceErrors, RowsOutsideTheTensorAreRefusedByEveryUseBeforeAnythingIsWritten) {
  expect_refused_everywhere(
      {0, 100, kDim, "LoRA module lora_q patches rows [100, 140) of a base tensor with 120 rows"});
}

TEST(LoraSliceErrors, AnUpFactorWithOtherRowsThanTheSliceIsRefusedByEveryUse) {
  expect_refused_everywhere(
      {1, kDim, 30,
       "LoRA module lora_k has an up factor of 40 rows for the 30 rows [40, 70) it patches"});
}

// Rows and columns that multiply to the tensor's count but are not its rows: a slice of them
// would patch other elements than the module's rows.
TEST(LoraSliceErrors, AMatrixOtherThanTheTensorsRowsIsRefusedInPlaceAndMerged) {
  const SliceFixture f(DType::F16);
  lora_test::write_tensors(
      f.dir / "wide.safetensors",
      {lora_test::random_tensor("m.lora_down.weight", DType::F32, {2, 3 * kDim}, 1),
       lora_test::random_tensor("m.lora_up.weight", DType::F32, {kDim, 2}, 2)});
  const auto wide = std::make_shared<const LoraFile>(read_lora(f.dir / "wide.safetensors"));
  LoraUse use{wide, {}, 1.0f};
  use.match.targets.push_back({0, kQkv, kDim, 3 * kDim, 0, kDim});
  // In place the file is the base's (as for the other checks of a loaded tensor); merged, the
  // LoRA's.
  const auto what = [&](const std::string& file) {
    return fmt::format(
        "{}: the LoRA was matched to a [40, 120] matrix; the base tensor has shape [120, 40] "
        "(tensor {})",
        file, kQkv);
  };
  LoadedModel loaded = f.load_model(true);
  LoraPatcher patcher(f.base, loaded);
  try {
    patcher.apply(use);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()), what(f.base.files()[0].path));
  }
  try {
    write_merged_model(f.base, std::span(&use, 1), f.dir / "merged.safetensors");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
    EXPECT_EQ(std::string(e.what()), what(wide->path()));
  }
}

}  // namespace
}  // namespace weightmap
