// gMock matchers for absl::Status / StatusOr (Abseil 20220623 ships none):
// EXPECT_THAT(s, IsOk()); EXPECT_THAT(s, StatusIs(absl::StatusCode::kNotFound, HasSubstr("x")));
// FT_ASSERT_OK_AND_ASSIGN(auto v, MakeThing());
#ifndef FEDTRAIN_TESTS_TESTING_STATUS_MATCHERS_H_
#define FEDTRAIN_TESTS_TESTING_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fedtrain::testing {

inline const absl::Status& GetStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& GetStatus(const absl::StatusOr<T>& s) { return s.status(); }

MATCHER(IsOk, "is OK") {
  const absl::Status& s = GetStatus(arg);
  if (!s.ok()) *result_listener << "status is " << s.ToString();
  return s.ok();
}

MATCHER_P2(StatusIs, code, message_matcher, "") {
  const absl::Status& s = GetStatus(arg);
  *result_listener << "status is " << s.ToString();
  return s.code() == code &&
         ::testing::ExplainMatchResult(message_matcher, std::string(s.message()),
                                       result_listener);
}

}  // namespace fedtrain::testing

#define FT_TESTING_CONCAT_(a, b) a##b
#define FT_TESTING_CONCAT(a, b) FT_TESTING_CONCAT_(a, b)
#define FT_ASSERT_OK(expr) ASSERT_THAT((expr), ::fedtrain::testing::IsOk())
#define FT_EXPECT_OK(expr) EXPECT_THAT((expr), ::fedtrain::testing::IsOk())
#define FT_ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  FT_TESTING_ASSIGN_(FT_TESTING_CONCAT(ft_test_so_, __LINE__), lhs, rexpr)
#define FT_TESTING_ASSIGN_(tmp, lhs, rexpr)                       \
  auto tmp = (rexpr);                                             \
  ASSERT_THAT(tmp, ::fedtrain::testing::IsOk());                  \
  lhs = std::move(tmp).value()

#endif  // FEDTRAIN_TESTS_TESTING_STATUS_MATCHERS_H_
