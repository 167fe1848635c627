// weightmap's dtype ids are ggml_type values: the whole table must agree with ggml.
#include <gtest/gtest.h>

#include <string_view>

#include "weightmap/dtype.hpp"
#include "weightmap/ggml.hpp"

namespace weightmap::ggml {
namespace {

TEST(GgmlDtypeTable, EveryGgmlTypeHasTheSameNameBlockSizeAndBytes) {
  int known = 0;
  for (int id = 0; id < GGML_TYPE_COUNT; ++id) {
    const auto type = static_cast<ggml_type>(id);
    const auto dtype = find_dtype_by_ggml_id(static_cast<std::uint32_t>(id));
    // ggml keeps the ids of removed types (q4_2, q4_3, ...) with a block size of 0.
    if (ggml_blck_size(type) == 0) {
      EXPECT_FALSE(dtype.has_value()) << "id " << id << " was removed from ggml";
      continue;
    }
    ASSERT_TRUE(dtype.has_value()) << "ggml type " << ggml_type_name(type) << " (id " << id
                                   << ") is missing from weightmap's table";
    const DTypeInfo& info = dtype_info(*dtype);
    EXPECT_EQ(info.name, std::string_view(ggml_type_name(type))) << "id " << id;
    EXPECT_EQ(info.block_size, static_cast<std::uint32_t>(ggml_blck_size(type))) << info.name;
    EXPECT_EQ(info.block_bytes, ggml_type_size(type)) << info.name;
    EXPECT_TRUE(info.in_ggml) << info.name;
    EXPECT_EQ(ggml_type_of(*dtype), type);
    EXPECT_EQ(dtype_of(type), *dtype);
    ++known;
  }
  EXPECT_GT(known, 30);
}

TEST(GgmlDtypeTable, TypesMarkedInGgmlExistInGgml) {
  for (const DTypeInfo& info : all_dtypes()) {
    const auto id = static_cast<std::uint32_t>(info.id);
    if (info.in_ggml) {
      ASSERT_LT(id, static_cast<std::uint32_t>(GGML_TYPE_COUNT)) << info.name;
      EXPECT_NE(ggml_blck_size(static_cast<ggml_type>(id)), 0) << info.name;
    } else {
      EXPECT_GE(id, 1000u) << info.name;
      EXPECT_THROW(ggml_type_of(info.id), Error) << info.name;
    }
  }
}

TEST(GgmlShapeOrder, ShapeIsNeReversedWithoutTrailingOnes) {
  ggml_init_params params{ggml_tensor_overhead() * 4, nullptr, true};
  ggml_context* context = ggml_init(params);
  ggml_tensor* t = ggml_new_tensor_3d(context, GGML_TYPE_F32, 64, 8, 3);
  EXPECT_EQ(shape_of(*t), (std::vector<std::uint64_t>{3, 8, 64}));
  ggml_tensor* v = ggml_new_tensor_1d(context, GGML_TYPE_F32, 5);
  EXPECT_EQ(shape_of(*v), (std::vector<std::uint64_t>{5}));
  ggml_free(context);

  const std::vector<std::uint64_t> shape{3, 8, 64};
  EXPECT_EQ(ne_of(shape), (std::array<std::int64_t, GGML_MAX_DIMS>{64, 8, 3, 1}));
  const std::vector<std::uint64_t> five{1, 2, 3, 4, 5};
  EXPECT_THROW(ne_of(five), Error);
}

}  // namespace
}  // namespace weightmap::ggml
