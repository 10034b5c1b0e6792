// cli/progress.h: the bar line fits the terminal width, dropping the least important fields
// first; $COLUMNS sets the width.
#include "cli/progress.h"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

RoundSummary Summary() {
  RoundSummary s;
  s.round = 974;  // 0-based index of the 975th round
  s.train_loss = 0.123456;
  s.cum_bytes_up = 9'540'000'000;
  s.cum_bytes_down = 9'540'000'000;
  s.wall_s = 1234.5;
  s.rejected = 3;
  return s;
}

TEST(ProgressTest, BarLineFitsEveryWidth) {
  const RoundSummary s = Summary();
  const std::string full = Progress::Line(s, 1500, 0.8607);
  for (int cols = 1; cols <= 200; ++cols) {
    const std::string line = Progress::BarLine(s, 1500, 0.8607, cols);
    EXPECT_LE(static_cast<int>(line.size()), std::max(cols - 1, 1)) << cols;
  }
  // Wide: everything, with the full bar.
  const std::string wide = Progress::BarLine(s, 1500, 0.8607, 200);
  EXPECT_EQ(wide, "[###############.........] " + full);
  // 80 columns: the round, the accuracy, the ETA and the rejections stay; MB down goes first.
  const std::string narrow = Progress::BarLine(s, 1500, 0.8607, 80);
  EXPECT_THAT(narrow, HasSubstr("round 975/1500"));
  EXPECT_THAT(narrow, HasSubstr("acc 86.07%"));
  EXPECT_THAT(narrow, HasSubstr("ETA "));
  EXPECT_THAT(narrow, HasSubstr("rejected 3"));
  EXPECT_THAT(narrow, Not(HasSubstr("down")));
  EXPECT_EQ(narrow[0], '[');
  // 70 columns: the ETA is the last to go; here it stays, the bar shrinks.
  EXPECT_EQ(Progress::BarLine(s, 1500, 0.8607, 70),
            "[##########......] round 975/1500  acc 86.07%  ETA 11m05s  rejected 3");
  // Very narrow: no bar, only the fields never dropped, cut at the edge.
  const std::string tiny = Progress::BarLine(s, 1500, 0.8607, 30);
  EXPECT_EQ(tiny, std::string("round 975/1500  acc 86.07%  rejected 3").substr(0, 29));
}

TEST(ProgressTest, ColumnsReadsTheEnvironmentThenDefaultsTo80) {
  std::FILE* f = std::tmpfile();  // not a terminal: no TIOCGWINSZ
  setenv("COLUMNS", "132", 1);
  EXPECT_EQ(Progress::Columns(f), 132);
  setenv("COLUMNS", "junk", 1);
  EXPECT_EQ(Progress::Columns(f), 80);
  unsetenv("COLUMNS");
  EXPECT_EQ(Progress::Columns(f), 80);
  std::fclose(f);
}

}  // namespace
}  // namespace fedtrain
