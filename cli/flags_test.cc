// cli/flags.h: every option accepts "--name VALUE" and "--name=VALUE", repeated options keep
// their command-line order, usage errors name the option, positionals and pass-through.
#include "cli/flags.h"

#include <cstdio>
#include <string>
#include <vector>

#include "core/log.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedtrain {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kHelp[] = "usage: test [options]\n";

// Runs Parse with stdout/stderr captured in temporary files.
struct Parsed {
  int rc;
  std::string out, err;
};

std::string Slurp(std::FILE* f) {
  std::string s;
  std::rewind(f);
  char buf[512];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) s.append(buf, n);
  std::fclose(f);
  return s;
}

struct Cmd {
  std::string config;
  std::vector<std::string> sets, positional;
  int threads = 0;
  int64_t big = 0;
  bool sw = false;
  std::string output = "plot.png";
};

Parsed ParseWith(const std::vector<std::string>& args, Cmd* c, bool positional = true) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  Flags flags(kHelp, out, err);
  flags.String("--config", &c->config, "--config needs a file")
      .Append("--set", &c->sets, "--set needs path=value")
      .Custom("--out",
              [c](const std::string& v) {
                c->sets.push_back("output.dir=" + v);
                return true;
              },
              "--out needs a folder")
      .Int("--threads", &c->threads, 1, "--threads needs a positive number")
      .Int("--big", &c->big, 0, "--big needs a number >= 0")
      .Switch("--switch", &c->sw)
      .String("-o,--output", &c->output, "--output needs a file", /*non_empty=*/true);
  if (positional) flags.Positional(&c->positional);
  Parsed p;
  p.rc = flags.Parse(args);
  p.out = Slurp(out);
  p.err = Slurp(err);
  return p;
}

TEST(FlagsTest, BothValueFormsWorkForEveryOption) {
  Cmd a, b;
  Parsed pa = ParseWith({"--config", "x.json", "--set", "a=1", "--threads", "2", "--big",
                   "5000000000", "--switch", "-o", "p.svg", "run1"},
                  &a);
  Parsed pb = ParseWith({"--config=x.json", "--set=a=1", "--threads=2", "--big=5000000000",
                   "--switch", "--output=p.svg", "run1"},
                  &b);
  ASSERT_EQ(pa.rc, -1) << pa.err;
  ASSERT_EQ(pb.rc, -1) << pb.err;
  for (const Cmd* c : {&a, &b}) {
    EXPECT_EQ(c->config, "x.json");
    EXPECT_THAT(c->sets, ElementsAre("a=1"));
    EXPECT_EQ(c->threads, 2);
    EXPECT_EQ(c->big, 5000000000);
    EXPECT_TRUE(c->sw);
    EXPECT_EQ(c->output, "p.svg");
    EXPECT_THAT(c->positional, ElementsAre("run1"));
  }
}

TEST(FlagsTest, RepeatedOptionsKeepCommandLineOrderAcrossOptions) {
  Cmd c;
  ASSERT_EQ(ParseWith({"--set", "a=1", "--out=d1", "--set=b=2", "--out", "d2", "--set", "a=3"}, &c).rc,
            -1);
  EXPECT_THAT(c.sets, ElementsAre("a=1", "output.dir=d1", "b=2", "output.dir=d2", "a=3"));
}

TEST(FlagsTest, ValuesMayContainEqualsAndBeEmpty) {
  Cmd c;
  c.config = "x";
  ASSERT_EQ(ParseWith({"--set=algorithm.params.mu=0.5", "--config", ""}, &c).rc, -1);
  EXPECT_THAT(c.sets, ElementsAre("algorithm.params.mu=0.5"));
  EXPECT_EQ(c.config, "");
}

TEST(FlagsTest, UsageErrorsNameTheOptionAndExitTwo) {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  } cases[] = {
      {{"--threads", "0"}, "--threads needs a positive number"},
      {{"--threads=x"}, "--threads needs a positive number"},
      {{"--config"}, "--config needs a file"},
      {{"--output="}, "--output needs a file"},
      {{"--bogus"}, "unknown option '--bogus'"},
      {{"--bogus=3"}, "unknown option '--bogus'"},
  };
  for (const Case& k : cases) {
    Cmd c;
    Parsed p = ParseWith(k.args, &c);
    EXPECT_EQ(p.rc, 2) << k.args[0];
    EXPECT_THAT(p.err, HasSubstr("fedtrain: " + k.message)) << k.args[0];
    EXPECT_THAT(p.err, HasSubstr(kHelp));
  }
  // Without Positional, a bare word is refused too.
  Cmd c;
  Parsed p = ParseWith({"stray"}, &c, /*positional=*/false);
  EXPECT_EQ(p.rc, 2);
  EXPECT_THAT(p.err, HasSubstr("unexpected argument 'stray'"));
}

TEST(FlagsTest, HelpPrintsTheCommandsHelpAndExitsZero) {
  for (const char* h : {"--help", "-h"}) {
    Cmd c;
    Parsed p = ParseWith({"--config", "x", h}, &c);
    EXPECT_EQ(p.rc, 0);
    EXPECT_EQ(p.out, std::string(kHelp) + kCommonOptionsHelp);
    EXPECT_EQ(p.err, "");
  }
}

TEST(FlagsTest, EveryCommandTakesLogLevel) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--log-level", "warning"}, {"--log-level=warning"}}) {
    SetLogLevel(LogLevel::kInfo);
    Cmd c;
    ASSERT_EQ(ParseWith(args, &c).rc, -1);
    EXPECT_EQ(GetLogLevel(), LogLevel::kWarning);
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"--log-level", "loud"}, {"--log-level"}}) {
    Cmd c;
    Parsed p = ParseWith(args, &c);
    EXPECT_EQ(p.rc, 2);
    EXPECT_THAT(p.err, HasSubstr("--log-level needs debug, info, warning or error"));
  }
  SetLogLevel(LogLevel::kInfo);
}

TEST(FlagsTest, RestCollectsUnknownArgumentsInOrder) {
  std::string token;
  std::vector<std::string> rest;
  std::FILE* err = std::tmpfile();
  Flags flags(kHelp, stdout, err);
  flags.String("--token", &token, "--token needs a value").Rest(&rest);
  ASSERT_EQ(flags.Parse({"--config", "c.json", "--token=t", "--set=a=1", "--listen", "h:0"}),
            -1)
      << Slurp(err);
  std::fclose(err);
  EXPECT_EQ(token, "t");
  EXPECT_THAT(rest, ElementsAre("--config", "c.json", "--set=a=1", "--listen", "h:0"));
}

}  // namespace
}  // namespace fedtrain
