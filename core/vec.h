// Vector views and the parameter layout. Views never own; ParamLayout is an immutable value
// (thread-compatible) describing how a flat parameter vector splits into named tensors.
#ifndef FEDTRAIN_CORE_VEC_H_
#define FEDTRAIN_CORE_VEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace fedtrain {

using Vec = absl::Span<float>;
using ConstVec = absl::Span<const float>;
using ClientId = uint64_t;

// One named tensor inside a flat parameter vector, e.g. "fc0.weight" with shape {200, 784}.
struct Segment {
  std::string name;
  std::vector<size_t> shape;
  size_t offset = 0;  // in floats, from the start of the flat vector
  size_t size() const;
};

// Named segments laid end to end. Built with Add(); offsets are assigned in call order.
class ParamLayout {
 public:
  // Appends a segment; returns its offset.
  size_t Add(std::string name, std::vector<size_t> shape);
  size_t dim() const { return dim_; }
  const std::vector<Segment>& segments() const { return segments_; }
  // NotFound naming the segment when absent.
  absl::StatusOr<const Segment*> Find(const std::string& name) const;
  Vec Slice(Vec flat, const Segment& s) const { return flat.subspan(s.offset, s.size()); }
  ConstVec Slice(ConstVec flat, const Segment& s) const {
    return flat.subspan(s.offset, s.size());
  }
  // JSON array [{"name":..,"shape":[..],"offset":..}, ...] (used in saved models).
  std::string ToJson() const;

 private:
  std::vector<Segment> segments_;
  size_t dim_ = 0;
};

// 64-bit FNV-1a over raw bytes: a stable content hash (weights, golden tests, checksums).
uint64_t Fnv1a64(const void* data, size_t n, uint64_t h = 14695981039346656037ull);
inline uint64_t HashFloats(ConstVec v) { return Fnv1a64(v.data(), v.size() * sizeof(float)); }

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_VEC_H_
