// Bit patterns of floats and doubles, for tests that compare values bit for bit (negative
// zeros and NaN payloads included, which == would not tell apart).
#ifndef FEDTRAIN_TESTS_TESTING_BITS_H_
#define FEDTRAIN_TESTS_TESTING_BITS_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/types/span.h"

namespace fedtrain::testing {

inline uint64_t Bits(double d) {
  uint64_t b;
  std::memcpy(&b, &d, sizeof(b));
  return b;
}
inline std::vector<uint32_t> Bits(absl::Span<const float> v) {
  std::vector<uint32_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}
inline std::vector<uint64_t> Bits(const std::vector<double>& v) {
  std::vector<uint64_t> out(v.size());
  if (!v.empty()) std::memcpy(out.data(), v.data(), v.size() * sizeof(double));
  return out;
}
inline float FloatFromBits(uint32_t b) {
  float f;
  std::memcpy(&f, &b, sizeof(f));
  return f;
}
inline double DoubleFromBits(uint64_t b) {
  double d;
  std::memcpy(&d, &b, sizeof(d));
  return d;
}

}  // namespace fedtrain::testing

#endif  // FEDTRAIN_TESTS_TESTING_BITS_H_
