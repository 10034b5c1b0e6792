#include "aggregators/params.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregators/reducer.h"
#include "core/status_macros.h"

namespace fedtrain {

namespace {
thread_local ParamRecorder* active_recorder = nullptr;

void Record(const std::string& prefix, const std::string& key, google::protobuf::Value v) {
  if (active_recorder == nullptr) return;
  (*active_recorder->mutable_recorded(prefix).mutable_fields())[key] = std::move(v);
}
}  // namespace

ParamRecorder::ParamRecorder() { active_recorder = this; }
ParamRecorder::~ParamRecorder() { active_recorder = nullptr; }

void ParamReader::DefaultIsComputed(const std::string& key) const {
  if (active_recorder == nullptr || params_.fields().count(key) > 0) return;
  auto it = active_recorder->recorded_.find(prefix_);
  if (it != active_recorder->recorded_.end()) it->second.mutable_fields()->erase(key);
}

bool Range::Contains(double v) const {
  if (lo_open ? !(v > lo) : !(v >= lo)) return false;
  if (hi_open ? !(v < hi) : !(v <= hi)) return false;
  return true;
}

std::string Range::ToString() const {
  return absl::StrCat(lo_open ? "(" : "[", lo, ", ", hi, hi_open ? ")" : "]");
}

absl::StatusOr<double> ParamReader::Number(const std::string& key, double def, Range range) {
  known_.insert(key);
  double v = def;
  auto it = params_.fields().find(key);
  if (it != params_.fields().end()) {
    if (it->second.kind_case() != google::protobuf::Value::kNumberValue)
      return absl::InvalidArgumentError(
          absl::StrCat(prefix_, ".", key, " of ", algorithm_, " must be a number"));
    v = it->second.number_value();
  }
  if (!std::isfinite(v) || !range.Contains(v))
    return absl::InvalidArgumentError(absl::StrCat(prefix_, ".", key, " of ", algorithm_,
                                                   " must be in ", range.ToString(), "; got ", v));
  google::protobuf::Value rec;
  rec.set_number_value(v);
  Record(prefix_, key, std::move(rec));
  return v;
}

absl::StatusOr<int64_t> ParamReader::Integer(const std::string& key, int64_t def, Range range) {
  absl::StatusOr<double> v = Number(key, static_cast<double>(def), range);
  if (!v.ok()) return v.status();
  if (*v != std::floor(*v) || std::fabs(*v) > 9.0e15)
    return absl::InvalidArgumentError(absl::StrCat(prefix_, ".", key, " of ", algorithm_,
                                                   " must be an integer; got ", *v));
  return static_cast<int64_t>(*v);
}

absl::StatusOr<bool> ParamReader::Bool(const std::string& key, bool def) {
  known_.insert(key);
  auto it = params_.fields().find(key);
  bool v = def;
  if (it != params_.fields().end()) {
    if (it->second.kind_case() != google::protobuf::Value::kBoolValue)
      return absl::InvalidArgumentError(
          absl::StrCat(prefix_, ".", key, " of ", algorithm_, " must be true or false"));
    v = it->second.bool_value();
  }
  google::protobuf::Value rec;
  rec.set_bool_value(v);
  Record(prefix_, key, std::move(rec));
  return v;
}

absl::StatusOr<std::string> ParamReader::String(const std::string& key, const std::string& def,
                                                const std::vector<std::string>& allowed) {
  known_.insert(key);
  std::string v = def;
  auto it = params_.fields().find(key);
  if (it != params_.fields().end()) {
    if (it->second.kind_case() != google::protobuf::Value::kStringValue)
      return absl::InvalidArgumentError(
          absl::StrCat(prefix_, ".", key, " of ", algorithm_, " must be a string"));
    v = it->second.string_value();
  }
  for (const std::string& a : allowed)
    if (v == a) {
      google::protobuf::Value rec;
      rec.set_string_value(v);
      Record(prefix_, key, std::move(rec));
      return v;
    }
  return absl::InvalidArgumentError(absl::StrCat(prefix_, ".", key, " of ", algorithm_,
                                                 " must be one of ", absl::StrJoin(allowed, ", "),
                                                 "; got '", v, "'"));
}

absl::Status CheckServerLr(const v1::AlgorithmConfig& c) {
  if (!(c.server_lr() > 0) || !std::isfinite(c.server_lr()))
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.server_lr must be > 0, got ", c.server_lr()));
  return absl::OkStatus();
}

absl::StatusOr<std::string> ResolveWeighting(const v1::AlgorithmConfig& c,
                                             const std::string& def) {
  if (c.weighting().empty()) return def;
  if (c.weighting() != "samples" && c.weighting() != "uniform")
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.weighting must be samples or uniform, got '", c.weighting(), "'"));
  return c.weighting();
}

absl::Status ParamReader::Finish() const {
  for (const auto& kv : params_.fields())
    if (!known_.count(kv.first))
      return absl::InvalidArgumentError(absl::StrCat(
          prefix_, ".", kv.first, " is not a parameter of ", algorithm_,
          known_.empty() ? " (it takes none)"
                         : absl::StrCat(" (known: ", absl::StrJoin(known_, ", "), ")")));
  return absl::OkStatus();
}

absl::StatusOr<std::string> CheckAveraging(const v1::AlgorithmConfig& c, const std::string& def,
                                           const ReducerRegistry* reducers) {
  FT_ASSIGN_OR_RETURN(std::string weighting, ResolveWeighting(c, def));
  FT_RETURN_IF_ERROR(ValidateReducer(c.reducer(), reducers));
  return weighting;
}

}  // namespace fedtrain
