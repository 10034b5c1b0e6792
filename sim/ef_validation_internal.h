// Internals shared by the files of the error-feedback validation harness (ef_problems.cc,
// ef_validation.cc, ef_report.cc; the interface is ef_validation.h). Not part of the public
// interface. Pure functions, thread-safe.
#ifndef FEDTRAIN_SIM_EF_VALIDATION_INTERNAL_H_
#define FEDTRAIN_SIM_EF_VALIDATION_INTERNAL_H_

#include <limits>
#include <string>

#include "absl/strings/str_format.h"

namespace fedtrain {
namespace ef_internal {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A number as the plan's labels and the text table print it (%.4g).
inline std::string Num(double v) { return absl::StrFormat("%.4g", v); }

}  // namespace ef_internal
}  // namespace fedtrain

#endif  // FEDTRAIN_SIM_EF_VALIDATION_INTERNAL_H_
