// Shared gtest main for every fedtrain test binary. Ends with std::_Exit after flushing, so
// no global destructor (gRPC's shutdown stall, docs/maintainers.md §9) can hang a test process.
#include <cstdio>
#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleMock(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  std::fflush(stdout);
  std::fflush(stderr);
  std::_Exit(rc);
}
