#include "weightmap/dtype.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <set>

#include "weightmap/error.hpp"

namespace weightmap {
namespace {

TEST(DType, IdsEqualGgmlTypeValues) {
  EXPECT_EQ(static_cast<int>(DType::F32), 0);
  EXPECT_EQ(static_cast<int>(DType::F16), 1);
  EXPECT_EQ(static_cast<int>(DType::Q4_0), 2);
  EXPECT_EQ(static_cast<int>(DType::Q8_0), 8);
  EXPECT_EQ(static_cast<int>(DType::BF16), 30);
  EXPECT_EQ(static_cast<int>(DType::TQ1_0), 34);
  EXPECT_EQ(static_cast<int>(DType::TQ2_0), 35);
  EXPECT_EQ(static_cast<int>(DType::MXFP4), 39);
  EXPECT_EQ(dtype_from_ggml_id(12), DType::Q4_K);
}

TEST(DType, TableHasUniqueIdsAndNamesAndSaneBlocks) {
  std::set<std::uint32_t> ids;
  std::set<std::string_view> names;
  for (const auto& info : all_dtypes()) {
    EXPECT_TRUE(ids.insert(static_cast<std::uint32_t>(info.id)).second) << info.name;
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_GT(info.block_size, 0u);
    EXPECT_GT(info.block_bytes, 0u);
    EXPECT_EQ(&dtype_info(info.id), &info);
  }
  EXPECT_EQ(ids.size(), 47u);
}

TEST(DType, KnownBlockSizes) {
  EXPECT_EQ(dtype_info(DType::Q4_0).block_size, 32u);
  EXPECT_EQ(dtype_info(DType::Q4_0).block_bytes, 18u);
  EXPECT_EQ(dtype_info(DType::Q4_K).block_bytes, 144u);
  EXPECT_EQ(dtype_info(DType::Q6_K).block_bytes, 210u);
  EXPECT_EQ(dtype_info(DType::IQ4_XS).block_bytes, 136u);
  EXPECT_EQ(dtype_info(DType::TQ1_0).block_bytes, 54u);
  EXPECT_EQ(dtype_info(DType::MXFP4).block_bytes, 17u);
}

TEST(DType, NaturalAlignmentIsAPowerOfTwoDividingTheBlock) {
  for (const auto& info : all_dtypes()) {
    EXPECT_EQ(std::popcount(info.alignment), 1) << info.name;
    EXPECT_EQ(info.block_bytes % info.alignment, 0u) << info.name;
  }
  // The alignment of ggml's block structs: a ggml_half scale, a ggml_half2 pair, a float.
  EXPECT_EQ(dtype_info(DType::F32).alignment, 4u);
  EXPECT_EQ(dtype_info(DType::F16).alignment, 2u);
  EXPECT_EQ(dtype_info(DType::BF16).alignment, 2u);
  EXPECT_EQ(dtype_info(DType::I64).alignment, 8u);
  EXPECT_EQ(dtype_info(DType::Q4_0).alignment, 2u);
  EXPECT_EQ(dtype_info(DType::Q8_0).alignment, 2u);
  EXPECT_EQ(dtype_info(DType::Q4_1).alignment, 4u);
  EXPECT_EQ(dtype_info(DType::Q4_K).alignment, 4u);
  EXPECT_EQ(dtype_info(DType::Q6_K).alignment, 2u);
  EXPECT_EQ(dtype_info(DType::Q8_K).alignment, 4u);
  EXPECT_EQ(dtype_info(DType::MXFP4).alignment, 1u);
}

TEST(DType, SafetensorsNames) {
  for (const char* name :
       {"F64", "F32", "F16",  "BF16",    "I64",     "I32",     "I16",     "I8",      "U8", "U16",
        "U32", "U64", "BOOL", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"}) {
    EXPECT_EQ(dtype_info(dtype_from_safetensors_name(name)).safetensors_name, name);
  }
  EXPECT_EQ(dtype_from_safetensors_name("BF16"), DType::BF16);
  EXPECT_EQ(dtype_name(DType::BF16), "bf16");
}

TEST(DType, UnknownIdIsAnErrorShowingTheValue) {
  try {
    dtype_from_ggml_id(4);  // Q4_2, removed from ggml
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::unknown_dtype);
    EXPECT_STREQ(e.what(), "unknown ggml tensor type id 4");
  }
  EXPECT_THROW(dtype_from_ggml_id(1000), Error);  // BOOL exists, but not in ggml
}

TEST(DType, UnknownNameIsAnErrorShowingTheValue) {
  try {
    dtype_from_safetensors_name("F128\n");
    FAIL();
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "unknown safetensors dtype \"F128\\x0a\"");
  }
}

TEST(DType, BytesForCountsBlocksAndRejectsPartialBlocksAndOverflow) {
  EXPECT_EQ(dtype_bytes_for(DType::F32, 10), 40u);
  EXPECT_EQ(dtype_bytes_for(DType::Q4_0, 64), 36u);
  EXPECT_EQ(dtype_bytes_for(DType::Q4_0, 33), std::nullopt);
  EXPECT_EQ(dtype_bytes_for(DType::F4, 3), std::nullopt);
  EXPECT_EQ(dtype_bytes_for(DType::F6_E2M3, 8), 6u);
  EXPECT_EQ(dtype_bytes_for(DType::F64, std::uint64_t{1} << 62), std::nullopt);
}

}  // namespace
}  // namespace weightmap
