// core/log.h: the line format (UTC timestamp, level, text), the level filter, level names.
#include "core/log.h"

#include <cstdio>
#include <regex>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

std::string Slurp(std::FILE* f) {
  std::string s;
  std::rewind(f);
  char buf[256];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  return s;
}

TEST(LogTest, LinesHaveTimestampLevelAndTextAndRespectTheLevel) {
  std::FILE* f = std::tmpfile();
  SetLogSink(f);
  SetLogLevel(LogLevel::kInfo);
  int formatted = 0;
  auto count = [&formatted] { return ++formatted; };
  FT_LOG(kDebug, "hidden ", count());  // below the level: not even formatted
  FT_LOG(kInfo, "fedtrain server: ", 4, " workers joined");
  FT_LOG(kWarning, "refused ", "x");
  SetLogLevel(LogLevel::kError);
  FT_LOG(kWarning, "hidden too ", count());
  FT_LOG(kError, "bad");
  SetLogLevel(LogLevel::kInfo);
  SetLogSink(nullptr);
  const std::string out = Slurp(f);
  std::fclose(f);
  EXPECT_EQ(formatted, 0);
  const std::regex line(
      R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) [^\n]*\n)");
  std::string rest = out;
  std::vector<std::string> texts;
  std::smatch m;
  while (std::regex_search(rest, m, line) && m.position(0) == 0) {
    texts.push_back(m.str(0).substr(25));
    rest = m.suffix();
  }
  EXPECT_EQ(rest, "") << out;
  EXPECT_THAT(texts, ::testing::ElementsAre("INFO fedtrain server: 4 workers joined\n",
                                            "WARNING refused x\n", "ERROR bad\n"));
}

TEST(LogTest, ParseLogLevel) {
  EXPECT_EQ(*ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(*ParseLogLevel("INFO"), LogLevel::kInfo);
  EXPECT_EQ(*ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("warning"), LogLevel::kWarning);
  EXPECT_EQ(*ParseLogLevel("error"), LogLevel::kError);
  EXPECT_THAT(ParseLogLevel("loud").status().message(),
              ::testing::HasSubstr("unknown log level 'loud' (debug, info, warning or error)"));
}

}  // namespace
}  // namespace fedtrain
