// data.dataset "files": NumPy, CSV and IDX training data with their test split or a seeded
// hold-out, the natural split of a client column, and the errors that name file, row, column
// or field.
#include "runtime/file_data.h"

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <zlib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/npy.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::testing::HasSubstr;

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

template <typename T>
std::string Raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

v1::DataConfig Files(const std::vector<std::string>& sets) {
  v1::ExperimentConfig c;
  EXPECT_TRUE(ApplyOverride("data.dataset=files", &c).ok());
  for (const std::string& s : sets) EXPECT_TRUE(ApplyOverride("data.files." + s, &c).ok()) << s;
  return c.data();
}

TEST(FileDataTest, NpyImagesAreFlattenedScaledAndHeldOutBySeed) {
  TempDir dir;
  std::vector<uint8_t> x(20 * 2 * 3);
  for (size_t k = 0; k < x.size(); ++k) x[k] = static_cast<uint8_t>(k % 256);
  std::vector<int64_t> y(20);
  for (size_t i = 0; i < 20; ++i) y[i] = static_cast<int64_t>(i % 4);
  Write(dir.File("x.npy"), NpyArrayBytes("|u1", {20, 2, 3}, Raw(x)));
  Write(dir.File("y.npy"), NpyArrayBytes("<i8", {20}, Raw(y)));
  const v1::DataConfig cfg = Files({"format=npy", "train=" + dir.File("x.npy"),
                                    "train_labels=" + dir.File("y.npy"), "test_fraction=0.25"});
  FT_ASSERT_OK_AND_ASSIGN(FileData d, LoadFileData(cfg, 3));
  EXPECT_EQ(d.train.num_features, 6u);
  EXPECT_EQ(d.train.num_classes, 4);  // inferred: largest label + 1
  EXPECT_EQ(d.train.size(), 15u);
  EXPECT_EQ(d.test.size(), 5u);
  // Every row lands in exactly one split, scaled by 1/255, with its own label.
  std::vector<int> seen(20, 0);
  for (const Dataset* s : {&d.train, &d.test})
    for (size_t i = 0; i < s->size(); ++i) {
      const int row = static_cast<int>(std::lround(s->features[i * 6] * 255.0f)) / 6;
      ASSERT_GE(row, 0);
      ASSERT_LT(row, 20);
      ++seen[row];
      for (size_t j = 0; j < 6; ++j)
        EXPECT_EQ(s->features[i * 6 + j], static_cast<float>(x[row * 6 + j] / 255.0));
      EXPECT_EQ(s->labels[i], y[row]);
    }
  for (int c : seen) EXPECT_EQ(c, 1);
  FT_ASSERT_OK_AND_ASSIGN(FileData again, LoadFileData(cfg, 3));
  EXPECT_EQ(again.test.features, d.test.features);
  FT_ASSERT_OK_AND_ASSIGN(FileData other, LoadFileData(cfg, 4));
  EXPECT_NE(other.test.features, d.test.features);
  // With data.normalize none, uint8 stays 0..255.
  v1::DataConfig raw = cfg;
  raw.set_normalize("none");
  FT_ASSERT_OK_AND_ASSIGN(FileData r, LoadFileData(raw, 3));
  EXPECT_EQ(r.train.features[1], std::round(r.train.features[1]));
}

TEST(FileDataTest, NpyDefectsAreNamed) {
  TempDir dir;
  const std::vector<float> x = {0.5f, 1.0f, 2.0f, NAN};
  Write(dir.File("x.npy"), NpyArrayBytes("<f4", {2, 2}, Raw(x)));
  Write(dir.File("y3.npy"), NpyArrayBytes("<i4", {3}, Raw(std::vector<int32_t>{0, 1, 1})));
  Write(dir.File("yf.npy"), NpyArrayBytes("<f8", {2}, Raw(std::vector<double>{0.0, 1.5})));
  Write(dir.File("y.npy"), NpyArrayBytes("<i4", {2}, Raw(std::vector<int32_t>{0, 1})));
  Write(dir.File("c.npy"), NpyArrayBytes("<c8", {2}, std::string(16, '\0')));
  auto load = [&](const std::string& xs, const std::string& ys) {
    return LoadFileData(Files({"format=npy", "train=" + dir.File(xs), "train_labels=" + dir.File(ys),
                               "test=" + dir.File(xs), "test_labels=" + dir.File(ys)}), 1).status();
  };
  EXPECT_THAT(load("x.npy", "y3.npy"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has 3 labels but")));
  EXPECT_THAT(load("x.npy", "yf.npy"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label 1.5 of row 1")));
  EXPECT_THAT(load("x.npy", "y.npy"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("feature 1 of row 1 is nan")));
  EXPECT_THAT(load("c.npy", "y.npy"), StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("dtype '<c8'")));
  EXPECT_THAT(load("missing.npy", "y.npy"), StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing.npy")));
  EXPECT_THAT(LoadFileData(Files({"format=npy", "train=" + dir.File("x.npy")}), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("train_labels")));
  EXPECT_THAT(LoadFileData(Files({"format=parquet", "train=a"}), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.files.format")));
}

// A zip archive as numpy.savez (stored) or savez_compressed (deflate) writes one: for each
// member a local header and its data, then the central directory and its end record.
std::string Zip(const std::vector<std::pair<std::string, std::string>>& members, bool compress) {
  auto le = [](uint32_t v, int bytes) {
    std::string s;
    for (int i = 0; i < bytes; ++i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  };
  std::string out, central;
  for (const auto& [name, raw] : members) {
    std::string data = raw;
    if (compress) {
      z_stream zs{};
      EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
      data.assign(deflateBound(&zs, raw.size()), '\0');
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(raw.data()));
      zs.avail_in = static_cast<uInt>(raw.size());
      zs.next_out = reinterpret_cast<Bytef*>(data.data());
      zs.avail_out = static_cast<uInt>(data.size());
      EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
      data.resize(zs.total_out);
      deflateEnd(&zs);
    }
    const uint32_t crc = crc32(0L, reinterpret_cast<const Bytef*>(raw.data()), raw.size());
    const std::string common = le(20, 2) + le(0, 2) + le(compress ? 8 : 0, 2) + le(0, 4) +
                               le(crc, 4) + le(data.size(), 4) + le(raw.size(), 4) +
                               le(name.size(), 2) + le(0, 2);
    central += le(0x02014b50, 4) + le(20, 2) + common + le(0, 2) + le(0, 2) + le(0, 2) +
               le(0, 4) + le(out.size(), 4) + name;
    out += le(0x04034b50, 4) + common + name + data;
  }
  return out + central + le(0x06054b50, 4) + le(0, 2) + le(0, 2) + le(members.size(), 2) +
         le(members.size(), 2) + le(central.size(), 4) + le(out.size(), 4) + le(0, 2);
}

TEST(FileDataTest, NpzArchivesStoredOrDeflated) {
  TempDir dir;
  std::vector<float> x(30);
  for (size_t k = 0; k < x.size(); ++k) x[k] = 0.5f * static_cast<float>(k);
  const std::vector<int64_t> y = {0, 1, 2, 0, 1, 2, 0, 1, 2, 2};
  const std::vector<std::pair<std::string, std::string>> members = {
      {"x.npy", NpyArrayBytes("<f4", {10, 3}, Raw(x))}, {"y.npy", NpyArrayBytes("<i8", {10}, Raw(y))}};
  for (bool compress : {false, true}) {
    const std::string path = dir.File(compress ? "c.npz" : "s.npz");
    Write(path, Zip(members, compress));
    FT_ASSERT_OK_AND_ASSIGN(FileData d, LoadFileData(Files({"format=npz", "train=" + path,
                                                            "test=" + path}), 1));
    EXPECT_EQ(d.train.features, x) << compress;
    EXPECT_EQ(d.train.labels, (std::vector<int32_t>(y.begin(), y.end()))) << compress;
    EXPECT_EQ(d.train.num_classes, 3);
    EXPECT_THAT(LoadFileData(Files({"format=npz", "train=" + path, "test=" + path,
                                    "labels_array=labels"}), 1).status(),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         HasSubstr("has no array 'labels'; its arrays are: x, y")));
  }
  // A flipped data byte fails the CRC; a file that is not a zip says so.
  std::string z = Zip(members, false);
  z[200] ^= 1;
  Write(dir.File("bad.npz"), z);
  EXPECT_THAT(LoadFileData(Files({"format=npz", "train=" + dir.File("bad.npz"),
                                  "test=" + dir.File("bad.npz")}), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("CRC-32")));
  Write(dir.File("no.npz"), "just text, not an archive");
  EXPECT_THAT(LoadFileData(Files({"format=npz", "train=" + dir.File("no.npz"),
                                  "test=" + dir.File("no.npz")}), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not a .npz (zip) archive")));
}

TEST(FileDataTest, CsvWithLabelAndClientColumns) {
  TempDir dir;
  Write(dir.File("t.csv"), "a, b ,label,user\n1,2,0,1\n3,4,1,0\r\n\n5,6.5,2,1\n");
  FT_ASSERT_OK_AND_ASSIGN(
      FileData d, LoadFileData(Files({"format=csv", "train=" + dir.File("t.csv"),
                                      "test=" + dir.File("t.csv"), "client_column=user"}), 1));
  EXPECT_EQ(d.train.num_features, 2u);
  EXPECT_EQ(d.train.num_classes, 3);
  EXPECT_EQ(d.train.features, (std::vector<float>{1, 2, 3, 4, 5, 6.5f}));
  EXPECT_EQ(d.train.labels, (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(d.train_clients, (std::vector<int64_t>{1, 0, 1}));
  auto bad = [&](const std::string& text, const std::vector<std::string>& more = {}) {
    Write(dir.File("b.csv"), text);
    std::vector<std::string> sets = {"format=csv", "train=" + dir.File("b.csv"),
                                     "test_fraction=0.5"};
    sets.insert(sets.end(), more.begin(), more.end());
    return LoadFileData(Files(sets), 1).status();
  };
  EXPECT_THAT(bad("a,y\n1,0\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("no column 'label' (data.files.label_column); the columns are: a, y")));
  EXPECT_THAT(bad("a,label\n1,0\nx,1\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("line 3, column 'a': 'x' is not a number")));
  EXPECT_THAT(bad("a,label\n1,0\n2\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                 HasSubstr("line 3 has 1 fields; the header has 2")));
  EXPECT_THAT(bad("a,label\n1,0\n2,-1\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                    HasSubstr("column 'label': -1 is not an integer")));
  EXPECT_THAT(bad("a,label\n1,0\ninf,1\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                     HasSubstr("every feature must be finite")));
  EXPECT_THAT(bad("a,label\n1,0\n2,5\n", {"num_classes=3"}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("data.files.num_classes = 3")));
  EXPECT_THAT(bad("a,label\n1,0\n2,0\n"), StatusIs(absl::StatusCode::kInvalidArgument,
                                                   HasSubstr("every label is 0")));
}

// IDX files as MNIST ships them, uncompressed: magic, counts, rows, columns, bytes.
TEST(FileDataTest, IdxFilesLoadLikeMnist) {
  TempDir dir;
  auto be32 = [](uint32_t v) {
    std::string s(4, '\0');
    for (int b = 0; b < 4; ++b) s[b] = static_cast<char>((v >> (24 - 8 * b)) & 0xff);
    return s;
  };
  std::string images = be32(0x803) + be32(4) + be32(2) + be32(2);
  for (int k = 0; k < 16; ++k) images += static_cast<char>(k * 16);
  std::string labels = be32(0x801) + be32(4) + std::string("\x07\x02\x01\x00", 4);
  Write(dir.File("img"), images);
  Write(dir.File("lab"), labels);
  FT_ASSERT_OK_AND_ASSIGN(FileData d, LoadFileData(Files({"format=idx", "train=" + dir.File("img"),
                                                          "train_labels=" + dir.File("lab"),
                                                          "test=" + dir.File("img"),
                                                          "test_labels=" + dir.File("lab")}), 1));
  EXPECT_EQ(d.train.num_features, 4u);
  EXPECT_EQ(d.train.num_classes, 8);
  EXPECT_EQ(d.train.labels, (std::vector<int32_t>{7, 2, 1, 0}));
  EXPECT_EQ(d.train.features[5], static_cast<float>(80 / 255.0));
  EXPECT_THAT(LoadFileData(Files({"format=idx", "train=" + dir.File("img"),
                                  "train_labels=" + dir.File("lab"), "num_classes=5",
                                  "test_fraction=0.5"}), 1).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("label is 7")));
}

// Through LoadExperimentData: the client column becomes the partition.
TEST(FileDataTest, NaturalSplitFromTheClientColumn) {
  TempDir dir;
  Write(dir.File("t.csv"), "f,label,c\n0.1,0,0\n0.2,1,1\n0.3,0,1\n0.4,1,0\n0.5,1,1\n");
  v1::ExperimentConfig c;
  for (const std::string& s :
       {std::string("data.dataset=files"), std::string("data.files.format=csv"),
        "data.files.train=" + dir.File("t.csv"), "data.files.test=" + dir.File("t.csv"),
        std::string("data.files.client_column=c"), std::string("partition.method=natural"),
        std::string("federation.num_clients=2"), std::string("federation.clients_per_round=2")})
    ASSERT_TRUE(ApplyOverride(s, &c).ok()) << s;
  FT_ASSERT_OK(ValidateConfig(c));
  FT_ASSERT_OK_AND_ASSIGN(ExperimentData d, LoadExperimentData(c));
  ASSERT_EQ(d.partition.clients.size(), 2u);
  EXPECT_EQ(d.partition.clients[0], (std::vector<uint32_t>{0, 3}));
  EXPECT_EQ(d.partition.clients[1], (std::vector<uint32_t>{1, 2, 4}));
  c.mutable_federation()->set_num_clients(3);
  EXPECT_THAT(LoadExperimentData(c).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("client 2 has no training rows")));
  c.mutable_data()->mutable_files()->set_client_column("");
  EXPECT_THAT(ValidateConfig(c), StatusIs(absl::StatusCode::kInvalidArgument,
                                          HasSubstr("data.files.client_column")));
}

}  // namespace
}  // namespace fedtrain
