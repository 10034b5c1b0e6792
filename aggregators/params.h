// Typed, validated access to an algorithm's `algorithm.params` (a protobuf Struct), for
// factories (*_factory.cc). Every key must be read; Finish() refuses the rest, so a typo
// ("mu_" for "mu") is an error naming the field instead of a silently ignored setting.
//
//   ParamReader p(cfg.params(), "fedprox");
//   FT_ASSIGN_OR_RETURN(double mu, p.Number("mu", 0.01, Range::AtLeast(0)));
//   FT_RETURN_IF_ERROR(p.Finish());
#ifndef FEDTRAIN_AGGREGATORS_PARAMS_H_
#define FEDTRAIN_AGGREGATORS_PARAMS_H_

#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fedtrain/v1/config.pb.h"
#include "google/protobuf/struct.pb.h"

namespace fedtrain {

// A closed or open interval for a number; names appear in error messages.
struct Range {
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool lo_open = false, hi_open = false;
  static Range Any() { return {}; }
  // Unbounded above: infinity itself is never a valid setting (ParamReader refuses
  // non-finite numbers), so the upper end is open and messages read "[lo, inf)".
  static Range AtLeast(double lo) { return {lo, std::numeric_limits<double>::infinity(), false, true}; }
  static Range GreaterThan(double lo) { return {lo, std::numeric_limits<double>::infinity(), true, true}; }
  static Range Positive() { return GreaterThan(0.0); }
  static Range Closed(double lo, double hi) { return {lo, hi, false, false}; }
  static Range OpenClosed(double lo, double hi) { return {lo, hi, true, false}; }
  static Range ClosedOpen(double lo, double hi) { return {lo, hi, false, true}; }
  static Range Open(double lo, double hi) { return {lo, hi, true, true}; }
  bool Contains(double v) const;
  std::string ToString() const;  // "(0, 1]"
};

class ParamReader {
 public:
  // `prefix` names the Struct in messages: "algorithm.params" (algorithms) or
  // "algorithm.reducer.params" (reducers).
  ParamReader(const google::protobuf::Struct& params, std::string algorithm,
              std::string prefix = "algorithm.params")
      : params_(params), algorithm_(std::move(algorithm)), prefix_(std::move(prefix)) {}

  // The number under `key` (or `def` when absent). InvalidArgument naming
  // algorithm.params.<key> when it is not a number, not finite, or outside `range`.
  absl::StatusOr<double> Number(const std::string& key, double def, Range range);
  // An integer-valued number.
  absl::StatusOr<int64_t> Integer(const std::string& key, int64_t def, Range range);
  absl::StatusOr<bool> Bool(const std::string& key, bool def);
  // One of `allowed`.
  absl::StatusOr<std::string> String(const std::string& key, const std::string& def,
                                     const std::vector<std::string>& allowed);
  // InvalidArgument naming the first key that was never read, with the known ones listed.
  absl::Status Finish() const;
  // For a key whose absence means "computed at run time" (not the default passed to the
  // read): when it is absent, its default is not recorded (ParamRecorder).
  void DefaultIsComputed(const std::string& key) const;

 private:
  const google::protobuf::Struct& params_;
  std::string algorithm_;
  std::string prefix_;
  std::set<std::string> known_;
};

// While one lives on a thread, every ParamReader on that thread records each key it reads
// with the value it resolved to (given or default), per prefix ("algorithm.params",
// "algorithm.reducer.params"). ResolveConfig runs the factory's Validate under one so that
// the resolved config (config.json, --print-config) shows the parameters' defaults.
// Not nestable; one per thread at a time.
class ParamRecorder {
 public:
  ParamRecorder();
  ~ParamRecorder();
  ParamRecorder(const ParamRecorder&) = delete;
  ParamRecorder& operator=(const ParamRecorder&) = delete;
  // prefix -> the values read under it.
  const std::map<std::string, google::protobuf::Struct>& recorded() const { return recorded_; }
  google::protobuf::Struct& mutable_recorded(const std::string& prefix) { return recorded_[prefix]; }

 private:
  friend class ParamReader;
  std::map<std::string, google::protobuf::Struct> recorded_;
};

// Typed fields shared by the built-in factories, InvalidArgument naming the field:
// algorithm.server_lr must be finite and > 0.
absl::Status CheckServerLr(const v1::AlgorithmConfig& c);
// algorithm.weighting for an algorithm whose spec default is `def`: "" gives `def`; otherwise
// it must be "samples" or "uniform".
absl::StatusOr<std::string> ResolveWeighting(const v1::AlgorithmConfig& c, const std::string& def);
// The two settings of a server half that averages client vectors, checked together: the
// resolved algorithm.weighting (ResolveWeighting), then that algorithm.reducer names a
// reducer of `reducers` (null: the built-in reducers) and is valid. Returns the weighting.
class ReducerRegistry;
absl::StatusOr<std::string> CheckAveraging(const v1::AlgorithmConfig& c, const std::string& def,
                                           const ReducerRegistry* reducers);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_PARAMS_H_
