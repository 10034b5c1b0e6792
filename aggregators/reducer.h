// The averaging step of server halves, behind an interface so a robust reducer (coordinate
// median, trimmed mean, Krum, Flag Aggregator, ...) can replace the weighted mean without
// touching any algorithm: server halves hold a Reducer and call it wherever the spec writes
// "sum_i w_i v_i" over the received clients.
//
// Reducers have a registry of their own (ReducerRegistry: built-ins plus plug-ins, the same
// shape as the algorithm registry); `algorithm.reducer { name, f, nonfinite, params }` picks
// one. The built-in rules are one .h/.cc pair each (mean here, the robust rules in
// <rule>_reducer.{h,cc}); the list of built-ins is RegisterBuiltinReducers in reducer.cc.
// Pure; a ThreadPool may be lent. Reducers are thread-compatible (Reduce is const; the
// memory of a stateful rule lives in ReduceContext::state, which the server checkpoints).
#ifndef FEDTRAIN_AGGREGATORS_REDUCER_H_
#define FEDTRAIN_AGGREGATORS_REDUCER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "core/thread_pool.h"
#include "core/vec.h"
#include "fedtrain/v1/config.pb.h"

namespace fedtrain {

using ReducerCfg = v1::ReducerConfig;

// What a rule did in one round, for the metrics row (columns reducer_discarded and
// reducer_diag). Several calls in one round (SCAFFOLD's two vectors) add up.
struct ReduceDiagnostics {
  int64_t calls = 0;
  int64_t discarded = 0;  // inputs left out of the output (or zeroed for being non-finite)
  std::string detail;     // JSON object text per call, joined with ';' over calls
  void Add(int64_t discarded_inputs, const std::string& json);
};

struct ReduceContext {
  uint64_t round = 0;
  ThreadPool* pool = nullptr;  // may be null
  // Client ids of the inputs (same order), for diagnostics; empty: input indices are used.
  absl::Span<const uint64_t> ids;
  // The server's checkpointed named vectors (ServerState::vectors). A stateful rule
  // (centered_clipping) keeps its memory under "<state_key>.<name>". Null: no memory (a
  // one-off call such as `fedtrain aggregate`); such a rule then starts from zero.
  std::map<std::string, std::vector<float>>* state = nullptr;
  std::string state_key = "reducer";
  ReduceDiagnostics* diagnostics = nullptr;  // may be null
};

class Reducer {
 public:
  virtual ~Reducer() = default;
  virtual std::string name() const = 0;
  // out = reduction of `in` (sorted by client id) with normalised weights `w` (sum 1; the
  // mean uses them, the robust rules treat every input alike). The mean is sum_k w[k] in[k]
  // accumulated in double in that order (weighted_mean.h). Errors: InvalidArgument for
  // empty input or mismatched sizes; FailedPrecondition naming the rule and the numbers when
  // the round has too few inputs for the declared f. Never writes NaN for finite inputs.
  virtual absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                              Vec out, const ReduceContext& ctx) const = 0;
  // Convenience for callers without round context.
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      ThreadPool* pool) const {
    ReduceContext ctx;
    ctx.pool = pool;
    return Reduce(in, w, out, ctx);
  }
};

class MeanReducer final : public Reducer {
 public:
  using Reducer::Reduce;
  std::string name() const override { return "mean"; }
  absl::Status Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w, Vec out,
                      const ReduceContext& ctx) const override;
};

// Name + validate-at-load + create, like AlgorithmFactory.
class ReducerFactory {
 public:
  virtual ~ReducerFactory() = default;
  virtual std::string name() const = 0;  // "flag"; a contract: configs name it
  // At config load; InvalidArgument naming the field (algorithm.reducer.params.<key>, ...).
  // The common fields (f >= 0, nonfinite) are checked by the registry before this.
  virtual absl::Status Validate(const ReducerCfg& c) const = 0;
  virtual absl::StatusOr<std::unique_ptr<Reducer>> Make(const ReducerCfg& c) const = 0;
  // True only for a rule whose output is the exact weighted mean (what tracker-based error
  // feedback needs).
  virtual bool exact_mean() const { return false; }
};

// Thread-compatible: register everything first, then look up from any thread.
class ReducerRegistry {
 public:
  absl::Status Register(std::unique_ptr<ReducerFactory> f);  // AlreadyExists on a duplicate
  // InvalidArgument naming algorithm.reducer.name and listing the registered names.
  absl::StatusOr<const ReducerFactory*> Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  // Find + common-field checks + Validate.
  absl::Status Validate(const ReducerCfg& c) const;
  // Validate + Make.
  absl::StatusOr<std::unique_ptr<Reducer>> Make(const ReducerCfg& c) const;

 private:
  std::map<std::string, std::unique_ptr<ReducerFactory>> factories_;
};

// fedtrain's own reducers (the one list of built-ins).
void RegisterBuiltinReducers(ReducerRegistry* r);

// The reducer `c` names, from `registry`; with a null registry, from the built-ins (a factory
// used outside any AlgorithmRegistry, as unit tests do).
absl::StatusOr<std::unique_ptr<Reducer>> MakeReducer(const ReducerCfg& c,
                                                     const ReducerRegistry* registry);
absl::Status ValidateReducer(const ReducerCfg& c, const ReducerRegistry* registry);
// Whether `c` names a rule whose output is the exact weighted mean.
bool ReducerIsExactMean(const ReducerCfg& c, const ReducerRegistry* registry);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_REDUCER_H_
