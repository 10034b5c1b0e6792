#include "core/vec.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace fedtrain {

size_t Segment::size() const {
  size_t n = 1;
  for (size_t s : shape) n *= s;
  return n;
}

size_t ParamLayout::Add(std::string name, std::vector<size_t> shape) {
  Segment s{std::move(name), std::move(shape), dim_};
  dim_ += s.size();
  segments_.push_back(std::move(s));
  return segments_.back().offset;
}

absl::StatusOr<const Segment*> ParamLayout::Find(const std::string& name) const {
  for (const Segment& s : segments_)
    if (s.name == name) return &s;
  return absl::NotFoundError(absl::StrCat("no parameter segment named '", name, "'"));
}

std::string ParamLayout::ToJson() const {
  std::string out = "[";
  for (size_t i = 0; i < segments_.size(); ++i) {
    const Segment& s = segments_[i];
    absl::StrAppend(&out, i ? "," : "", "{\"name\":\"", s.name, "\",\"shape\":[",
                    absl::StrJoin(s.shape, ","), "],\"offset\":", s.offset, "}");
  }
  out += "]";
  return out;
}

uint64_t Fnv1a64(const void* data, size_t n, uint64_t h) {
  const unsigned char* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace fedtrain
