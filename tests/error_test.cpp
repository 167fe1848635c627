#include "weightmap/error.hpp"

#include <gtest/gtest.h>

namespace weightmap {
namespace {

TEST(Error, RendersFileTensorAndOffset) {
  const Error e(ErrorCode::malformed, "bad thing", {"m.gguf", "blk.0.w", 1234});
  EXPECT_STREQ(e.what(), "m.gguf: bad thing (tensor blk.0.w, byte 1234)");
  EXPECT_EQ(e.message(), "bad thing");
}

TEST(Error, OmitsWhatIsUnknown) {
  EXPECT_STREQ(Error(ErrorCode::io, "x").what(), "x");
  EXPECT_STREQ(Error(ErrorCode::io, "x", {"f"}).what(), "f: x");
  EXPECT_STREQ(Error(ErrorCode::io, "x", {"f", {}, 7}).what(), "f: x (byte 7)");
  EXPECT_STREQ(Error(ErrorCode::io, "x", {"f", "t"}).what(), "f: x (tensor t)");
}

TEST(Error, OuterContextFillsOnlyWhatIsMissing) {
  Error e(ErrorCode::malformed, "bad", {{}, "t", 5});
  e.add_context({"file.safetensors", "other", 99});
  EXPECT_STREQ(e.what(), "file.safetensors: bad (tensor t, byte 5)");
}

TEST(Printable, EscapesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(printable("plain.name"), "plain.name");
  EXPECT_EQ(printable("\x1b[2Jx"), "\\x1b[2Jx");
  EXPECT_EQ(printable("a\xff"
                      "b"),
            "a\\xffb");
  EXPECT_EQ(printable("\xc0\x80"), "\\xc0\\x80");  // overlong NUL
  EXPECT_EQ(printable("模型"), "模型");
  EXPECT_EQ(printable(std::string(300, 'a'), 10), std::string(10, 'a') + "...");
}

TEST(Utf8, ValidatesWellFormedSequencesOnly) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("model.diffusion.权重.🙂"));
  EXPECT_FALSE(is_valid_utf8("\xff"));
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_valid_utf8("\xf4\x90\x80\x80"));  // above U+10FFFF
}

}  // namespace
}  // namespace weightmap
