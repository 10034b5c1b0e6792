// Tests of the IDX reader: tiny files written here (plain and gzip) read back exactly, every
// error names its file, and the installed Fashion-MNIST test split loads when present.
#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::testing::AllOf;
using ::testing::HasSubstr;

void PutU32(std::vector<uint8_t>* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back((v >> shift) & 0xff);
}

std::vector<uint8_t> ImagesFile(uint32_t n, uint32_t rows, uint32_t cols,
                                const std::vector<uint8_t>& pixels, uint32_t magic = 0x803) {
  std::vector<uint8_t> b;
  PutU32(&b, magic);
  PutU32(&b, n);
  PutU32(&b, rows);
  PutU32(&b, cols);
  b.insert(b.end(), pixels.begin(), pixels.end());
  return b;
}

std::vector<uint8_t> LabelsFile(const std::vector<uint8_t>& labels, uint32_t magic = 0x801) {
  std::vector<uint8_t> b;
  PutU32(&b, magic);
  PutU32(&b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

void WritePlain(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

void WriteGzip(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())),
            static_cast<int>(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

// 3 images of 2x3 pixels covering 0, 255 and values in between; labels of 4 classes.
const std::vector<uint8_t> kPixels = {0,  1,  2,   3,   4,   5,   10,  51, 100,
                                      128, 200, 254, 255, 255, 0, 7, 77, 177};
const std::vector<uint8_t> kLabels = {3, 0, 2};

void ExpectTinyDataset(const Dataset& d) {
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.num_features, 6u);
  EXPECT_EQ(d.num_classes, 4);
  EXPECT_EQ(d.labels, std::vector<int32_t>({3, 0, 2}));
  ASSERT_EQ(d.features.size(), kPixels.size());
  for (size_t i = 0; i < kPixels.size(); ++i) {
    // Exact: the reader must compute the same float expression.
    EXPECT_EQ(d.features[i], static_cast<float>(kPixels[i]) / 255.0f) << "pixel " << i;
  }
  EXPECT_EQ(d.row(2)[0], 1.0f);
  EXPECT_EQ(d.row(0)[0], 0.0f);
}

TEST(IdxTest, ReadsPlainFilesExactly) {
  TempDir dir;
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, kPixels));
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  FT_ASSERT_OK_AND_ASSIGN(Dataset d, LoadIdx(dir.File("img"), dir.File("lbl"), 4));
  ExpectTinyDataset(d);
}

TEST(IdxTest, ReadsGzipFilesExactly) {
  TempDir dir;
  WriteGzip(dir.File("img.gz"), ImagesFile(3, 2, 3, kPixels));
  WriteGzip(dir.File("lbl.gz"), LabelsFile(kLabels));
  FT_ASSERT_OK_AND_ASSIGN(Dataset d, LoadIdx(dir.File("img.gz"), dir.File("lbl.gz"), 4));
  ExpectTinyDataset(d);
}

TEST(IdxTest, UnscaledKeepsThePixelValues) {
  TempDir dir;
  WriteGzip(dir.File("img.gz"), ImagesFile(3, 2, 3, kPixels));
  WriteGzip(dir.File("lbl.gz"), LabelsFile(kLabels));
  FT_ASSERT_OK_AND_ASSIGN(Dataset d,
                          LoadIdx(dir.File("img.gz"), dir.File("lbl.gz"), 4, /*scale=*/false));
  ASSERT_EQ(d.features.size(), kPixels.size());
  for (size_t i = 0; i < kPixels.size(); ++i)
    EXPECT_EQ(d.features[i], static_cast<float>(kPixels[i])) << "pixel " << i;
  EXPECT_EQ(d.labels, std::vector<int32_t>({3, 0, 2}));
}

TEST(IdxTest, ReadsMixedPlainAndGzipAndEmptySet) {
  TempDir dir;
  WriteGzip(dir.File("img.gz"), ImagesFile(0, 28, 28, {}));
  WritePlain(dir.File("lbl"), LabelsFile({}));
  FT_ASSERT_OK_AND_ASSIGN(Dataset d, LoadIdx(dir.File("img.gz"), dir.File("lbl"), 10));
  EXPECT_EQ(d.size(), 0u);
  EXPECT_EQ(d.num_features, 784u);
  EXPECT_TRUE(d.features.empty());
}

TEST(IdxTest, MissingFileIsNotFoundNamingThePath) {
  TempDir dir;
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, kPixels));
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  const std::string missing = dir.File("nope.gz");
  EXPECT_THAT(LoadIdx(missing, dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(missing), HasSubstr("no such file"))));
  EXPECT_THAT(LoadIdx(dir.File("img"), missing, 4),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(missing), HasSubstr("no such file"))));
  EXPECT_THAT(LoadFashionMnist(dir.path(), /*train=*/false),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("t10k-labels-idx1-ubyte.gz")));
}

TEST(IdxTest, BadMagicIsDataLossNamingTheFile) {
  TempDir dir;
  // Images and labels swapped: each file has the other's magic.
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, kPixels));
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  EXPECT_THAT(LoadIdx(dir.File("lbl"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("lbl")), HasSubstr("bad magic 0x00000801"))));
  EXPECT_THAT(LoadIdx(dir.File("img"), dir.File("img"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("img")), HasSubstr("bad magic 0x00000803"))));
  // A file that is not IDX at all, e.g. float32 data (magic type byte 0x0D).
  WritePlain(dir.File("f32"), ImagesFile(3, 2, 3, kPixels, 0x00000D03));
  EXPECT_THAT(LoadIdx(dir.File("f32"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("f32")), HasSubstr("bad magic"))));
}

TEST(IdxTest, TruncatedDataIsDataLossNamingTheFile) {
  TempDir dir;
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  std::vector<uint8_t> short_pixels(kPixels.begin(), kPixels.end() - 1);
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, short_pixels));
  EXPECT_THAT(LoadIdx(dir.File("img"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("img")), HasSubstr("truncated pixels"),
                             HasSubstr("expected 18 bytes, file ends after 17"))));

  // Header cut short after the magic.
  std::vector<uint8_t> header = ImagesFile(3, 2, 3, {});
  header.resize(10);
  WriteGzip(dir.File("hdr.gz"), header);
  EXPECT_THAT(LoadIdx(dir.File("hdr.gz"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("hdr.gz")), HasSubstr("truncated header"))));

  // Labels short of the count in their header.
  std::vector<uint8_t> labels = LabelsFile(kLabels);
  labels.pop_back();
  WriteGzip(dir.File("lbl.gz"), labels);
  WritePlain(dir.File("img_ok"), ImagesFile(3, 2, 3, kPixels));
  EXPECT_THAT(LoadIdx(dir.File("img_ok"), dir.File("lbl.gz"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("lbl.gz")), HasSubstr("truncated labels"))));
}

TEST(IdxTest, CutOffGzipStreamIsDataLossNamingTheFile) {
  TempDir dir;
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  // Pixels that do not compress well, so the cut lands inside the deflate data.
  std::vector<uint8_t> pixels(3 * 2000);
  uint32_t state = 12345;
  for (uint8_t& p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(state >> 24);
  }
  WriteGzip(dir.File("img.gz"), ImagesFile(3, 40, 50, pixels));
  const auto full = std::filesystem::file_size(dir.File("img.gz"));
  std::filesystem::resize_file(dir.File("img.gz"), full / 2);
  EXPECT_THAT(LoadIdx(dir.File("img.gz"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir.File("img.gz"))));
}

TEST(IdxTest, CountMismatchIsDataLossNamingBothFiles) {
  TempDir dir;
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, kPixels));
  WritePlain(dir.File("lbl"), LabelsFile({1, 2}));
  EXPECT_THAT(LoadIdx(dir.File("img"), dir.File("lbl"), 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("img") + " has 3 images"),
                             HasSubstr(dir.File("lbl") + " has 2 labels"))));
}

TEST(IdxTest, LabelOutOfRangeIsDataLossNamingTheFile) {
  TempDir dir;
  WritePlain(dir.File("img"), ImagesFile(3, 2, 3, kPixels));
  WritePlain(dir.File("lbl"), LabelsFile(kLabels));
  // kLabels holds a 3, which 3 classes do not allow.
  EXPECT_THAT(LoadIdx(dir.File("img"), dir.File("lbl"), 3),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(dir.File("lbl")),
                             HasSubstr("label 3 of sample 0 is >= num_classes 3"))));
  EXPECT_THAT(LoadIdx(dir.File("img"), dir.File("lbl"), 0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("num_classes")));
}

TEST(IdxTest, LoadsFashionMnistTestSplit) {
  if (!std::filesystem::exists(kFashionMnistDir)) {
    GTEST_SKIP() << kFashionMnistDir
                 << " is absent (Debian package dataset-fashion-mnist not installed)";
  }
  FT_ASSERT_OK_AND_ASSIGN(Dataset d, LoadFashionMnist(kFashionMnistDir, /*train=*/false));
  EXPECT_EQ(d.size(), 10000u);
  EXPECT_EQ(d.num_features, 784u);
  EXPECT_EQ(d.num_classes, 10);
  ASSERT_EQ(d.features.size(), 10000u * 784u);
  std::vector<int> per_class(10, 0);
  for (int32_t y : d.labels) ++per_class[y];
  EXPECT_THAT(per_class, ::testing::Each(1000));
  float lo = 1.0f, hi = 0.0f;
  for (float x : d.features) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  EXPECT_EQ(lo, 0.0f);
  EXPECT_EQ(hi, 1.0f);
}

}  // namespace
}  // namespace fedtrain
