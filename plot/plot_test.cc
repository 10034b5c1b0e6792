// Tests for `fedtrain plot`: metrics.csv parsing (column lookup by name, NaN rows, errors
// that name file and line), tick placement, and PNG/SVG output of fake run folders.
#include "plot/plot.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cairo.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

using ::fedtrain::testing::IsOk;
using ::fedtrain::testing::StatusIs;
using ::fedtrain::testing::ReadFileBytes;
using ::fedtrain::testing::TempDir;
using ::fedtrain::testing::WriteFileBytes;
using ::testing::AllOf;
using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsNull;
using ::testing::NotNull;
using ::testing::Pointwise;

constexpr char kHeader[] =
    "round,sampled,received,rejected,train_loss,test_loss,test_accuracy,bytes_up,bytes_down,"
    "cum_bytes_up,cum_bytes_down,lr,wall_s";

// A metrics.csv as `fedtrain simulate` writes it: evaluation every `eval_every` rounds (NaN
// in between), accuracy rising and loss falling at rate 1/tau, `up` bytes per round.
std::string FakeMetricsCsv(int rounds, int eval_every, double tau, double up) {
  std::string out = absl::StrCat(kHeader, "\n");
  for (int r = 1; r <= rounds; ++r) {
    const bool eval = r % eval_every == 0;
    const double acc = 0.95 - 0.85 * std::exp(-r / tau);
    const double loss = 0.15 + 2.15 * std::exp(-r / tau);
    absl::StrAppend(&out, absl::StrFormat("%d,10,10,0,%.9g,%s,%s,%.9g,%.9g,%.9g,%.9g,0.1,%.3f\n", r,
                                          loss * 1.1, eval ? absl::StrFormat("%.9g", loss) : "nan",
                                          eval ? absl::StrFormat("%.9g", acc) : "nan", up, 4 * up,
                                          r * up, r * 4 * up, 0.05 * r));
  }
  return out;
}

// Makes <parent>/<name>/ with config.json and the given metrics.csv; returns the folder.
std::string MakeRun(const TempDir& tmp, const std::string& name, const std::string& csv) {
  const std::string dir = tmp.File(name);
  std::filesystem::create_directories(dir);
  WriteFileBytes(dir + "/config.json", "{}\n");
  WriteFileBytes(dir + "/metrics.csv", csv);
  return dir;
}

// Pixels of exactly this colour in a PNG, read back with cairo. Inside a line of width >= 2
// some pixels are fully covered and keep the run's colour exactly, antialiasing aside.
int CountPixels(const std::string& png_path, int r, int g, int b) {
  cairo_surface_t* s = cairo_image_surface_create_from_png(png_path.c_str());
  int count = -1;
  if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
    count = 0;
    const unsigned char* data = cairo_image_surface_get_data(s);
    const int stride = cairo_image_surface_get_stride(s);
    const uint32_t want = (0xFFu << 24) | (r << 16) | (g << 8) | b;  // Native-endian ARGB32.
    for (int y = 0; y < cairo_image_surface_get_height(s); ++y) {
      const uint32_t* row = reinterpret_cast<const uint32_t*>(data + y * stride);
      for (int x = 0; x < cairo_image_surface_get_width(s); ++x)
        count += (row[x] | 0xFF000000u) == want;
    }
  }
  cairo_surface_destroy(s);
  return count;
}

uint32_t BigEndian32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

// ----- Parsing ---------------------------------------------------------------------------

TEST(ParseMetricsCsvTest, FindsColumnsByNameInAnyOrderWithExtras) {
  const std::string csv =
      "note,cum_bytes_up,test_loss,round,extra,test_accuracy\r\n"
      "a,100,nan,1,7,nan\r\n"
      "b,200,0.5,2,x,0.75\r\n"
      "\r\n";
  FT_ASSERT_OK_AND_ASSIGN(RunMetrics m, ParseMetricsCsv(csv, "m.csv"));
  EXPECT_EQ(m.num_rows(), 2u);
  ASSERT_THAT(m.Column("round"), NotNull());
  EXPECT_THAT(*m.Column("round"), ElementsAre(1, 2));
  EXPECT_THAT(*m.Column("cum_bytes_up"), ElementsAre(100, 200));
  EXPECT_TRUE(std::isnan((*m.Column("test_accuracy"))[0]));
  EXPECT_EQ((*m.Column("test_accuracy"))[1], 0.75);
  EXPECT_EQ((*m.Column("test_loss"))[1], 0.5);
  // A text column we do not draw is kept as NaN rather than refused.
  EXPECT_TRUE(std::isnan((*m.Column("note"))[0]));
  EXPECT_EQ((*m.Column("extra"))[0], 7);
  EXPECT_TRUE(std::isnan((*m.Column("extra"))[1]));
  EXPECT_THAT(m.Column("absent"), IsNull());
}

TEST(ParseMetricsCsvTest, HeaderOnlyIsAnEmptyRun) {
  FT_ASSERT_OK_AND_ASSIGN(RunMetrics m, ParseMetricsCsv(absl::StrCat(kHeader, "\n"), "m.csv"));
  EXPECT_EQ(m.num_rows(), 0u);
  EXPECT_EQ(m.names.size(), 13u);
}

TEST(ParseMetricsCsvTest, MissingRequiredColumnNamesFileLineAndColumn) {
  EXPECT_THAT(ParseMetricsCsv("round,test_loss,cum_bytes_up\n1,2,3\n", "runs/a/metrics.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("runs/a/metrics.csv:1"), HasSubstr("test_accuracy"))));
}

TEST(ParseMetricsCsvTest, WrongFieldCountNamesLine) {
  const std::string csv = absl::StrCat(kHeader, "\n1,10,10,0,1,1,0.5,1,1,1,1,0.1,0.1\n1,2,3\n");
  EXPECT_THAT(ParseMetricsCsv(csv, "m.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("m.csv:3"), HasSubstr("3 fields"), HasSubstr("13"))));
}

TEST(ParseMetricsCsvTest, QuotedFieldsMayHoldCommasAndQuotes) {
  // As core/metrics.cc writes a reducer's JSON diagnostics (RFC 4180 quoting).
  const std::string csv =
      "round,test_accuracy,test_loss,cum_bytes_up,reducer_diag,after\n"
      "0,0.5,1,10,\"{\"\"rule\"\":\"\"krum\"\",\"\"chosen\"\":[1,2]}\",3\n";
  FT_ASSERT_OK_AND_ASSIGN(RunMetrics m, ParseMetricsCsv(csv, "m.csv"));
  ASSERT_EQ(m.num_rows(), 1u);
  EXPECT_THAT(*m.Column("after"), ElementsAre(3));
  EXPECT_TRUE(std::isnan((*m.Column("reducer_diag"))[0]));
  EXPECT_THAT(ParseMetricsCsv("round,test_accuracy,test_loss,cum_bytes_up\n1,0.5,\"1,10\n",
                              "m.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("m.csv:2"), HasSubstr("not closed"))));
}

TEST(ParseMetricsCsvTest, NonNumericRequiredCellNamesLineAndColumn) {
  const std::string csv = "round,test_accuracy,test_loss,cum_bytes_up\n1,0.5,1,10\n2,high,1,20\n";
  EXPECT_THAT(
      ParseMetricsCsv(csv, "m.csv"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(HasSubstr("m.csv:3"), HasSubstr("test_accuracy"), HasSubstr("'high'"))));
}

TEST(ParseMetricsCsvTest, NanRoundIsRefused) {
  EXPECT_THAT(ParseMetricsCsv("round,test_accuracy,test_loss,cum_bytes_up\nnan,0.5,1,10\n", "m"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("m:2")));
}

TEST(ParseMetricsCsvTest, EmptyAndDuplicateHeaderAreRefused) {
  EXPECT_THAT(ParseMetricsCsv("", "m.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("m.csv: empty")));
  EXPECT_THAT(ParseMetricsCsv("round,test_accuracy,test_loss,cum_bytes_up,round\n", "m.csv"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("m.csv:1"), HasSubstr("'round' appears twice"))));
}

TEST(ReadRunMetricsTest, LabelIsTheFolderBaseName) {
  TempDir tmp;
  const std::string dir = MakeRun(tmp, "fedavg_topk", FakeMetricsCsv(4, 2, 3, 1e5));
  FT_ASSERT_OK_AND_ASSIGN(RunMetrics m, ReadRunMetrics(dir));
  EXPECT_EQ(m.label, "fedavg_topk");
  EXPECT_EQ(m.num_rows(), 4u);
  FT_ASSERT_OK_AND_ASSIGN(RunMetrics slash, ReadRunMetrics(dir + "/"));
  EXPECT_EQ(slash.label, "fedavg_topk");
}

TEST(ReadRunMetricsTest, MissingFolderIsNotFoundNamingMetricsCsv) {
  TempDir tmp;
  EXPECT_THAT(ReadRunMetrics(tmp.File("no_such_run")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no_such_run/metrics.csv")));
}

// ----- Ticks -----------------------------------------------------------------------------

TEST(NiceTicksTest, RoundStepsInsideTheRange) {
  // Ticks are multiples of the step, so 0.2 * 3 may differ from 0.6 in the last bit.
  EXPECT_THAT(NiceTicks(0, 1, 5), Pointwise(DoubleNear(1e-12), {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  EXPECT_THAT(NiceTicks(3, 97, 5), ElementsAre(20, 40, 60, 80));
  EXPECT_THAT(NiceTicks(-0.3, 0.3, 3), Pointwise(DoubleNear(1e-12), {-0.2, 0.0, 0.2}));
  EXPECT_THAT(NiceTicks(2e6, 9.5e6, 4), ElementsAre(2e6, 4e6, 6e6, 8e6));
  EXPECT_THAT(NiceTicks(5, 5, 4), ElementsAre(5));
  EXPECT_THAT(NiceTicks(1, 0, 4), ElementsAre());
}

TEST(NiceTicksTest, MinStepKeepsRoundTicksWhole) {
  EXPECT_THAT(NiceTicks(0.8, 3.2, 10, /*min_step=*/1), ElementsAre(1, 2, 3));
}

TEST(LogTicksTest, DecadesAndOneTwoFive) {
  EXPECT_THAT(LogTicks(0.3, 40, 0), ElementsAre(0.5, 1, 2, 5, 10, 20));
  EXPECT_THAT(LogTicks(0.3, 40, 1), ElementsAre(1, 10));
  EXPECT_THAT(LogTicks(0.001, 1e4, 2), ElementsAre(0.01, 1, 100, 1e4));
  EXPECT_THAT(LogTicks(0, 10, 1), ElementsAre());  // No log axis through zero.
}

// ----- Figures ---------------------------------------------------------------------------

class PlotRunsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    runs_.push_back(MakeRun(tmp_, "fedavg", FakeMetricsCsv(40, 2, 10, 2.5e6)));
    // The second run: another column order, an extra column, evaluation every 5 rounds.
    std::string csv = "wall_s,test_accuracy,round,cum_bytes_up,test_loss,codec\n";
    for (int r = 1; r <= 30; ++r) {
      const bool eval = r % 5 == 0;
      absl::StrAppend(
          &csv,
          absl::StrFormat("%.2f,%s,%d,%d,%s,topk/1\n", 0.1 * r,
                          eval ? absl::StrCat(0.9 - 0.7 * std::exp(-r / 6.0)) : "nan", r,
                          r * 300000, eval ? absl::StrCat(0.3 + 2 * std::exp(-r / 6.0)) : "nan"));
    }
    runs_.push_back(MakeRun(tmp_, "scaffold_m_topk", csv));
  }

  TempDir tmp_;
  std::vector<std::string> runs_;
};

TEST_F(PlotRunsTest, WritesPngOfTheRequestedSize) {
  PlotOptions opts;
  opts.output = tmp_.File("fig.png");
  opts.width = 1000;
  opts.height = 700;
  opts.title = "FedAvg vs SCAFFOLD-M";
  FT_ASSERT_OK(PlotRuns(runs_, opts));
  const std::string png = ReadFileBytes(opts.output);
  ASSERT_GT(png.size(), 24u + 1000u);  // A blank 1000x700 image compresses to far less.
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_EQ(png.substr(12, 4), "IHDR");
  EXPECT_EQ(BigEndian32(png, 16), 1000u);
  EXPECT_EQ(BigEndian32(png, 20), 700u);
  // Both runs' lines are drawn, in the first two palette colours.
  EXPECT_GT(CountPixels(opts.output, 31, 119, 180), 200);
  EXPECT_GT(CountPixels(opts.output, 255, 127, 14), 200);
}

TEST_F(PlotRunsTest, WritesSvg) {
  PlotOptions opts;
  opts.output = tmp_.File("fig.SVG");  // The extension is matched without case.
  FT_ASSERT_OK(PlotRuns(runs_, opts));
  const std::string svg = ReadFileBytes(opts.output);
  EXPECT_THAT(svg, HasSubstr("<svg"));
  EXPECT_THAT(svg, HasSubstr("</svg>"));
}

TEST_F(PlotRunsTest, ManyRunsOddLabelsAndEmptyRunsDraw) {
  // Thirteen runs wrap the legend and reuse colours with dashes; one run has no rows, one a
  // single evaluation, one a name that is not UTF-8 (cairo would refuse it as text).
  for (int i = 0; i < 8; ++i)
    runs_.push_back(MakeRun(tmp_, absl::StrCat("seed", i, "_a_rather_long_run_name"),
                            FakeMetricsCsv(20 + i, 1, 3 + i, 1e4 * (i + 1))));
  runs_.push_back(MakeRun(tmp_, "empty", absl::StrCat(kHeader, "\n")));
  runs_.push_back(MakeRun(tmp_, "bad\xff\xfename", FakeMetricsCsv(1, 1, 2, 1e3)));
  // A run that diverged: infinite and overflowing losses are left out, not drawn.
  runs_.push_back(MakeRun(
      tmp_, "diverged",
      "round,test_accuracy,test_loss,cum_bytes_up\n1,0.1,2.3,10\n2,0.1,1e308,20\n3,0.1,inf,30\n"
      "4,0.1,-1e308,40\n"));
  PlotOptions opts;
  opts.output = tmp_.File("many.png");
  opts.width = 640;
  opts.height = 480;
  FT_EXPECT_OK(PlotRuns(runs_, opts));
  opts.output = tmp_.File("many.svg");
  FT_EXPECT_OK(PlotRuns(runs_, opts));
}

TEST_F(PlotRunsTest, TrafficOrdersOfMagnitudeApartDraw) {
  // 1000x less uplink: the traffic panels switch to a log axis; a round-0 row with zero
  // bytes cannot go on it and is left out rather than breaking the figure.
  std::string csv = absl::StrCat(kHeader, "\n0,0,0,0,nan,2.3,0.1,0,0,0,0,0.1,0\n");
  csv += FakeMetricsCsv(40, 2, 10, 2.5e3).substr(sizeof(kHeader));
  runs_.push_back(MakeRun(tmp_, "topk_0.1pct", csv));
  PlotOptions opts;
  opts.output = tmp_.File("log.svg");
  FT_ASSERT_OK(PlotRuns(runs_, opts));
  opts.output = tmp_.File("log.png");
  FT_ASSERT_OK(PlotRuns(runs_, opts));
}

TEST_F(PlotRunsTest, OnlyEmptyRunsStillDraw) {
  PlotOptions opts;
  opts.output = tmp_.File("empty.png");
  FT_EXPECT_OK(PlotRuns({MakeRun(tmp_, "empty", absl::StrCat(kHeader, "\n"))}, opts));
}

TEST_F(PlotRunsTest, MissingFolderIsNotFound) {
  PlotOptions opts;
  opts.output = tmp_.File("fig.png");
  EXPECT_THAT(PlotRuns({runs_[0], tmp_.File("missing_run")}, opts),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("missing_run/metrics.csv")));
  EXPECT_FALSE(std::filesystem::exists(opts.output));
}

TEST_F(PlotRunsTest, MalformedCsvNamesFileAndLine) {
  const std::string bad =
      MakeRun(tmp_, "bad", absl::StrCat(kHeader, "\n1,10,10,0,1,1,0.5,1,1,1,1,0.1,0.1\n2,10\n"));
  PlotOptions opts;
  opts.output = tmp_.File("fig.png");
  EXPECT_THAT(PlotRuns({runs_[0], bad}, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("bad/metrics.csv:3")));
}

TEST_F(PlotRunsTest, UnsupportedExtensionIsNamed) {
  PlotOptions opts;
  opts.output = tmp_.File("fig.jpg");
  EXPECT_THAT(PlotRuns(runs_, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'.jpg'")));
  opts.output = tmp_.File("fig");
  EXPECT_THAT(PlotRuns(runs_, opts), StatusIs(absl::StatusCode::kInvalidArgument,
                                              HasSubstr("supported are .png and .svg")));
}

TEST_F(PlotRunsTest, BadArgumentsAreRefused) {
  PlotOptions opts;
  opts.output = tmp_.File("fig.png");
  EXPECT_THAT(PlotRuns({}, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no run")));
  opts.width = 10;
  EXPECT_THAT(PlotRuns(runs_, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("10x900")));
  opts.width = 1200;
  opts.output.clear();
  EXPECT_THAT(PlotRuns(runs_, opts),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no output path")));
}

TEST_F(PlotRunsTest, UnwritableOutputIsAnErrorNamingThePath) {
  for (const char* name : {"no_such_dir/fig.png", "no_such_dir/fig.svg"}) {
    PlotOptions opts;
    opts.output = tmp_.File(name);
    const absl::Status s = PlotRuns(runs_, opts);
    EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr(opts.output)));
  }
  // A folder where the file should go.
  PlotOptions opts;
  opts.output = tmp_.File("dir.png");
  std::filesystem::create_directories(opts.output);
  const absl::Status s = PlotRuns(runs_, opts);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr(opts.output));
}

}  // namespace
}  // namespace fedtrain
