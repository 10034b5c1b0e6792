// Status helpers that Abseil 20220623 (Debian 12) does not ship: FT_RETURN_IF_ERROR,
// FT_ASSIGN_OR_RETURN and FT_CHECK. Header-only; no state.
#ifndef FEDTRAIN_CORE_STATUS_MACROS_H_
#define FEDTRAIN_CORE_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define FT_INTERNAL_CONCAT_(a, b) a##b
#define FT_INTERNAL_CONCAT(a, b) FT_INTERNAL_CONCAT_(a, b)

// Returns the status from the enclosing function when `expr` is not OK.
#define FT_RETURN_IF_ERROR(expr)                              \
  do {                                                        \
    const ::absl::Status ft_status_ = (expr);                 \
    if (!ft_status_.ok()) return ft_status_;                  \
  } while (0)

// FT_ASSIGN_OR_RETURN(T v, StatusOr-expr): declares/assigns `v` or returns the error.
#define FT_ASSIGN_OR_RETURN(lhs, rexpr) \
  FT_INTERNAL_ASSIGN_OR_RETURN(FT_INTERNAL_CONCAT(ft_statusor_, __LINE__), lhs, rexpr)
#define FT_INTERNAL_ASSIGN_OR_RETURN(tmp, lhs, rexpr) \
  auto tmp = (rexpr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

// Our own invariant broken: crash with a message. Never used for bad input (docs/maintainers.md
// §4).
#define FT_CHECK(cond)                                                              \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: FT_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

// Crashes when a Status that must be OK (by our own invariant) is not.
#define FT_CHECK_OK(expr)                                                          \
  do {                                                                             \
    const ::absl::Status ft_status_ = (expr);                                      \
    if (!ft_status_.ok()) {                                                        \
      std::fprintf(stderr, "%s:%d: FT_CHECK_OK failed: %s\n", __FILE__, __LINE__,   \
                   ft_status_.ToString().c_str());                                 \
      std::abort();                                                                \
    }                                                                              \
  } while (0)

#endif  // FEDTRAIN_CORE_STATUS_MACROS_H_
