// FileMetricsSink::Resume (core/metrics.h): a run resumed after N rounds keeps exactly the
// first N rows of metrics.jsonl and metrics.csv (and the CSV header), drops the later ones,
// and appends new rows in the same column order; the CSV header is written exactly once;
// fewer than N rows is DataLoss naming the file.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "core/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::ListDir;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Row of round r: an int, a double with a fractional part, a string with a comma-free value.
MetricsRow Row(int64_t r) {
  MetricsRow row;
  row.Set("round", r).Set("loss", 1.0 / static_cast<double>(r + 2)).Set("tag",
                                                                       absl::StrCat("r", r));
  return row;
}

std::string JsonLine(int64_t r) { return Row(r).ToJson() + "\n"; }

// Writes rounds [0, n) with a fresh sink (what the interrupted run left behind).
void WriteRun(const std::string& prefix, int64_t n) {
  FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink, FileMetricsSink::Open(prefix));
  for (int64_t r = 0; r < n; ++r) FT_ASSERT_OK(sink->Write(Row(r)));
}

// The files an uninterrupted run of rounds [0, n) writes.
struct Files {
  std::string jsonl, csv;
};
Files Uninterrupted(int64_t n) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  WriteRun(prefix, n);
  return {ReadFileBytes(prefix + ".jsonl"), ReadFileBytes(prefix + ".csv")};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out = absl::StrSplit(text, '\n');
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

TEST(MetricsResumeTest, KeepsTheFirstRowsDropsTheRestAndAppends) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 5));  // the run got to round 4, checkpoint after 3
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                            FileMetricsSink::Resume(prefix, 3));
    // Exactly rows 0..2 (and the header) are left once Resume returns.
    const Files three = Uninterrupted(3);
    EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), three.jsonl);
    EXPECT_EQ(ReadFileBytes(prefix + ".csv"), three.csv);
    for (int64_t r = 3; r < 6; ++r) FT_ASSERT_OK(sink->Write(Row(r)));
  }
  // The result is what an uninterrupted run of six rounds writes, byte for byte.
  const Files six = Uninterrupted(6);
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), six.jsonl);
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), six.csv);
  const std::vector<std::string> csv = Lines(ReadFileBytes(prefix + ".csv"));
  ASSERT_EQ(csv.size(), 7u);
  EXPECT_EQ(csv[0], "round,loss,tag");
  EXPECT_EQ(csv[4], "3,0.2,r3");
  // No temporary files are left next to the metrics.
  EXPECT_THAT(ListDir(dir.path()), ElementsAre("metrics.csv", "metrics.jsonl"));
}

TEST(MetricsResumeTest, ResumingAtEveryRowCountMatchesAnUninterruptedRun) {
  const Files want = Uninterrupted(4);
  for (int64_t keep = 0; keep <= 4; ++keep) {
    SCOPED_TRACE(absl::StrCat("keep ", keep));
    TempDir dir;
    const std::string prefix = dir.File("m");
    ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 4));
    {
      FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                              FileMetricsSink::Resume(prefix, keep));
      for (int64_t r = keep; r < 4; ++r) FT_ASSERT_OK(sink->Write(Row(r)));
    }
    EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), want.jsonl);
    EXPECT_EQ(ReadFileBytes(prefix + ".csv"), want.csv);  // one header, whatever `keep` is
  }
}

// The header comes from the kept file: a resumed sink checks new rows against it (FT_CHECK on
// a mismatch), so rows keep the original column order.
TEST(MetricsResumeTest, ResumedSinkUsesTheKeptHeader) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 2));
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                            FileMetricsSink::Resume(prefix, 1));
    FT_ASSERT_OK(sink->Write(Row(7)));
  }
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"),
            absl::StrCat("round,loss,tag\n0,0.5,r0\n7,", absl::StrFormat("%.9g", 1.0 / 9),
                         ",r7\n"));
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), JsonLine(0) + JsonLine(7));
}

TEST(MetricsResumeDeathTest, ResumedSinkRefusesRowsInAnotherColumnOrder) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 2));
  FT_ASSERT_OK(FileMetricsSink::Resume(prefix, 2).status());  // (idempotent: run again below)
  // Without the kept header the sink would start a second header instead of crashing.
  EXPECT_DEATH(
      {
        std::unique_ptr<FileMetricsSink> sink = FileMetricsSink::Resume(prefix, 2).value();
        MetricsRow swapped;
        swapped.Set("loss", 0.5).Set("round", int64_t{2}).Set("tag", std::string("x"));
        (void)sink->Write(swapped);
      },
      "FT_CHECK failed: row.items\\(\\)\\[i\\].first == header_\\[i\\]");
}

TEST(MetricsResumeTest, ZeroRowsLeavesEmptyFilesAndWritesTheHeaderOnce) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 3));
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                            FileMetricsSink::Resume(prefix, 0));
    // Nothing kept: both files are empty, the CSV without a header until the first row.
    EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), "");
    EXPECT_EQ(ReadFileBytes(prefix + ".csv"), "");
  }
  // Closing without a row adds nothing either.
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), "");
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                            FileMetricsSink::Resume(prefix, 0));
    FT_ASSERT_OK(sink->Write(Row(0)));
    FT_ASSERT_OK(sink->Write(Row(1)));
  }
  const Files want = Uninterrupted(2);
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), want.jsonl);
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), want.csv);
  const std::vector<std::string> csv = Lines(ReadFileBytes(prefix + ".csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), "round,loss,tag"), 1);
}

// Resume(0) on files that hold only a CSV header (a run that stopped before its first row was
// complete) also ends with exactly one header.
TEST(MetricsResumeTest, ZeroRowsAfterAHeaderOnlyCsvWritesOneHeader) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  WriteFileBytes(prefix + ".jsonl", "");
  WriteFileBytes(prefix + ".csv", "round,loss,tag\n");
  {
    FT_ASSERT_OK_AND_ASSIGN(std::unique_ptr<FileMetricsSink> sink,
                            FileMetricsSink::Resume(prefix, 0));
    FT_ASSERT_OK(sink->Write(Row(0)));
  }
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), Uninterrupted(1).csv);
}

TEST(MetricsResumeTest, ResumeTwiceKeepsTheSameRows) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 4));
  FT_ASSERT_OK(FileMetricsSink::Resume(prefix, 2).status());
  const std::string jsonl = ReadFileBytes(prefix + ".jsonl");
  const std::string csv = ReadFileBytes(prefix + ".csv");
  FT_ASSERT_OK(FileMetricsSink::Resume(prefix, 2).status());
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), jsonl);
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), csv);
  EXPECT_EQ(jsonl, Uninterrupted(2).jsonl);
}

TEST(MetricsResumeTest, MoreRowsThanPresentIsDataLossNamingTheFile) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 3));
  const Files three = Uninterrupted(3);
  EXPECT_THAT(FileMetricsSink::Resume(prefix, 4),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(prefix + ".jsonl"), HasSubstr("holds 3 rows"),
                             HasSubstr("after 4 rounds"))));
  // Refused before anything was rewritten.
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), three.jsonl);
  EXPECT_EQ(ReadFileBytes(prefix + ".csv"), three.csv);

  // A CSV shorter than the JSON Lines file: named as well (rows exclude the header).
  WriteFileBytes(prefix + ".csv", "round,loss,tag\n0,0.5,r0\n");
  EXPECT_THAT(FileMetricsSink::Resume(prefix, 2),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(prefix + ".csv"), HasSubstr("holds 1 rows"),
                             HasSubstr("after 2 rounds"))));
  // A CSV without even a header.
  WriteFileBytes(prefix + ".csv", "");
  EXPECT_THAT(FileMetricsSink::Resume(prefix, 1),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr(prefix + ".csv"), HasSubstr("holds 0 rows"))));
}

// Resume reads and checks both files before it rewrites either: a resume refused because the
// CSV is short leaves the JSON Lines rows in place too.
TEST(MetricsResumeTest, RefusedResumeLeavesBothFilesUntouched) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  ASSERT_NO_FATAL_FAILURE(WriteRun(prefix, 3));
  const std::string jsonl = ReadFileBytes(prefix + ".jsonl");
  WriteFileBytes(prefix + ".csv", "round,loss,tag\n0,0.5,r0\n");
  EXPECT_THAT(FileMetricsSink::Resume(prefix, 2), StatusIs(absl::StatusCode::kDataLoss,
                                                           HasSubstr(prefix + ".csv")));
  EXPECT_EQ(ReadFileBytes(prefix + ".jsonl"), jsonl);
}

TEST(MetricsResumeTest, MissingFilesAreNotFound) {
  TempDir dir;
  const std::string prefix = dir.File("metrics");
  EXPECT_THAT(FileMetricsSink::Resume(prefix, 0),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(prefix + ".jsonl")));
}

}  // namespace
}  // namespace fedtrain
