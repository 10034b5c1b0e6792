// .npy parsing: float64 input, format version 2, header variants, and the shape/dtype errors.
#include "runtime/npy.h"

#include <cstring>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::testing::HasSubstr;

// A hand-made file: magic, version, header length (2 or 4 bytes), header, data.
std::string File(int major, const std::string& dict, const std::string& data) {
  std::string h = dict + "\n";
  std::string out = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
  const uint32_t len = static_cast<uint32_t>(h.size());
  for (int b = 0; b < (major == 1 ? 2 : 4); ++b) out += static_cast<char>((len >> (8 * b)) & 0xff);
  return out + h + data;
}

TEST(NpyTest, ReadsFloat64AndVersion2) {
  const std::vector<double> v = {1.5, -2.25, 0.1, 4.0};
  std::string data(reinterpret_cast<const char*>(v.data()), v.size() * 8);
  FT_ASSERT_OK_AND_ASSIGN(
      NpyMatrix m, ParseNpyMatrix(File(2, "{'descr':'<f8','fortran_order':False,'shape':(2,2)}", data), "x"));
  EXPECT_EQ(m.rows, 2u);
  EXPECT_EQ(m.cols, 2u);
  EXPECT_EQ(m.dtype, "<f8");
  EXPECT_EQ(m.data, (std::vector<float>{1.5f, -2.25f, 0.1f, 4.0f}));
  EXPECT_FALSE(m.lossless);  // 0.1 is not a float32
}

TEST(NpyTest, RoundTripsItsOwnFiles) {
  const std::vector<std::vector<float>> rows = {{1, 2, 3}, {4, 5, 6}};
  FT_ASSERT_OK_AND_ASSIGN(NpyMatrix m, ParseNpyMatrix(NpyMatrixBytes(rows), "x"));
  EXPECT_EQ(m.data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(NpyVectorBytes({1, 2}).size() % 64, 8u);  // data start 64-aligned: 64 + 2 floats
}

TEST(NpyTest, ErrorsNameTheProblem) {
  const auto bad = absl::StatusCode::kInvalidArgument;
  EXPECT_THAT(ParseNpyMatrix("hello", "f.npy"), StatusIs(bad, HasSubstr("f.npy: not a .npy")));
  EXPECT_THAT(ParseNpyMatrix(File(7, "{}", ""), "f"), StatusIs(bad, HasSubstr("version 7")));
  EXPECT_THAT(ParseNpyMatrix(File(1, "{'descr':'>f4','fortran_order':False,'shape':(1,1)}", "abcd"), "f"),
              StatusIs(bad, HasSubstr("dtype '>f4'")));
  EXPECT_THAT(ParseNpyMatrix(File(1, "{'descr':'<f4','fortran_order':False,'shape':(0,3)}", ""), "f"),
              StatusIs(bad, HasSubstr("empty")));
  EXPECT_THAT(ParseNpyMatrix(File(1, "{'descr':'<f4','fortran_order':False,'shape':(1,2,3)}", ""), "f"),
              StatusIs(bad, HasSubstr("not 2-D")));
  EXPECT_THAT(ParseNpyMatrix(File(1, "{'descr':'<f4','shape':(1,1)}", "abcd"), "f"),
              StatusIs(bad, HasSubstr("unreadable .npy header")));
  std::string f = File(1, "{'descr':'<f4','fortran_order':False,'shape':(2,2)}", "abcd");
  EXPECT_THAT(ParseNpyMatrix(f, "f"), StatusIs(bad, HasSubstr("needs 16 data bytes, the file has 4")));
  EXPECT_THAT(ReadNpyMatrix("/nonexistent/x.npy"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("x.npy")));
}

}  // namespace
}  // namespace fedtrain
