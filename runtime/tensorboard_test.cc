// runtime/tensorboard.h: CRC-32C against its published check value, TFRecord framing read
// back (and refused when damaged), and a whole run's event file parsed back into the
// metrics it was written from.
#include "runtime/tensorboard.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
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
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(TensorBoardTest, Crc32cMatchesItsCheckValue) {
  // The CRC-32C check value: the CRC of the ASCII digits "123456789" (RFC 3720 B.4 lists
  // CRC-32C test vectors; 0xE3069283 is the catalogue's check value for this polynomial).
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  // 32 bytes of zeros, RFC 3720 B.4: 0x8A9136AA.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  // The mask: rotate right by 15, add the constant (mod 2^32).
  EXPECT_EQ(MaskCrc(0), 0xa282ead8u);
  EXPECT_EQ(MaskCrc(0x00008000u), 0x00000001u + 0xa282ead8u);
}

TEST(TensorBoardTest, RecordsReadBackAndDamageIsRefused) {
  const std::string bytes = TfRecord("hello") + TfRecord("") + TfRecord(std::string(300, 'x'));
  ASSERT_EQ(bytes.size(), 3 * 16 + 5 + 300u);  // 8 + 4 + data + 4 each
  FT_ASSERT_OK_AND_ASSIGN(std::vector<std::string> recs, ReadTfRecords(bytes));
  EXPECT_THAT(recs, ElementsAre("hello", "", std::string(300, 'x')));
  std::string bad = bytes;
  bad[12] ^= 1;  // a data byte of the first record
  EXPECT_THAT(ReadTfRecords(bad), StatusIs(absl::StatusCode::kDataLoss,
                                           HasSubstr("record 0: data checksum mismatch")));
  bad = bytes;
  bad[21 + 3] ^= 1;  // the second record's length (the first record is 8 + 4 + 5 + 4 bytes)
  EXPECT_THAT(ReadTfRecords(bad), StatusIs(absl::StatusCode::kDataLoss,
                                           HasSubstr("record 1: length checksum mismatch")));
  EXPECT_THAT(ReadTfRecords(bytes.substr(0, bytes.size() - 1)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("record 2: truncated")));
}

TEST(TensorBoardTest, SinkWritesOneEventPerRowAndPassesRowsOn) {
  TempDir dir;
  struct Collect : MetricsSink {
    absl::Status Write(const MetricsRow& r) override {
      rows.push_back(r);
      return absl::OkStatus();
    }
    std::vector<MetricsRow> rows;
  } next;
  std::string path;
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<TensorBoardSink> sink,
                            TensorBoardSink::Open(dir.File("tb"), &next));
    path = sink->path();
    for (int64_t r = 1; r <= 3; ++r) {
      MetricsRow row;
      row.Set("round", r).Set("train_loss", 1.0 / r)
          .Set("test_accuracy", r == 2 ? std::nan("") : 0.25 * r)
          .Set("cum_bytes_up", int64_t{1000} * r).Set("name", std::string("ignored"));
      FT_ASSERT_OK(sink->Write(row));
    }
  }
  EXPECT_EQ(next.rows.size(), 3u);
  EXPECT_THAT(path, HasSubstr("/tb/events.out.tfevents."));
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  FT_ASSERT_OK_AND_ASSIGN(std::vector<std::string> recs, ReadTfRecords(ss.str()));
  ASSERT_EQ(recs.size(), 4u);
  v1::TbEvent first;
  ASSERT_TRUE(first.ParseFromString(recs[0]));
  EXPECT_EQ(first.file_version(), "brain.Event:2");
  EXPECT_GT(first.wall_time(), 1.6e9);  // seconds since 1970: after 2020
  for (int r = 1; r <= 3; ++r) {
    v1::TbEvent e;
    ASSERT_TRUE(e.ParseFromString(recs[r]));
    EXPECT_EQ(e.step(), r);
    std::map<std::string, float> got;
    for (const v1::TbSummaryValue& v : e.summary().value()) got[v.tag()] = v.simple_value();
    EXPECT_EQ(got.at("train/loss"), static_cast<float>(1.0 / r));
    EXPECT_EQ(got.at("bytes/uplink_total"), 1000.0f * r);
    // NaN (a round without evaluation) is left out rather than plotted.
    EXPECT_EQ(got.count("test/accuracy"), r == 2 ? 0u : 1u);
    if (r != 2) {
      EXPECT_EQ(got.at("test/accuracy"), static_cast<float>(0.25 * r));
    }
    EXPECT_EQ(got.size(), r == 2 ? 2u : 3u);
  }
}

}  // namespace
}  // namespace fedtrain
