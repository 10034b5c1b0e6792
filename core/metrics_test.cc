#include "core/metrics.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fedtrain {
namespace {

TEST(MetricsTest, WritesJsonlAndCsv) {
  testing::TempDir dir;
  {
    FT_ASSERT_OK_AND_ASSIGN(auto sink, FileMetricsSink::Open(dir.File("metrics")));
    MetricsRow r;
    r.Set("round", int64_t{0}).Set("loss", 0.5).Set("name", std::string("a\"b"));
    FT_ASSERT_OK(sink->Write(r));
    MetricsRow r2;
    r2.Set("round", int64_t{1}).Set("loss", std::nan("")).Set("name", std::string("c,d"));
    FT_ASSERT_OK(sink->Write(r2));
  }
  EXPECT_EQ(testing::ReadFileBytes(dir.File("metrics.jsonl")),
            "{\"round\":0,\"loss\":0.5,\"name\":\"a\\\"b\"}\n"
            "{\"round\":1,\"loss\":null,\"name\":\"c,d\"}\n");
  EXPECT_EQ(testing::ReadFileBytes(dir.File("metrics.csv")), "round,loss,name\n0,0.5,\"a\"\"b\"\n1,nan,\"c,d\"\n");
}

}  // namespace
}  // namespace fedtrain
