#include "aggregators/reducer.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "aggregators/bulyan_reducer.h"
#include "aggregators/centered_clipping_reducer.h"
#include "aggregators/flag_reducer.h"
#include "aggregators/geometric_median_reducer.h"
#include "aggregators/krum_reducer.h"
#include "aggregators/median_reducer.h"
#include "aggregators/nna_reducer.h"
#include "aggregators/meamed_reducer.h"
#include "aggregators/trimmed_mean_reducer.h"
#include "aggregators/weighted_mean.h"
#include "core/status_macros.h"

namespace fedtrain {

void ReduceDiagnostics::Add(int64_t discarded_inputs, const std::string& json) {
  ++calls;
  discarded += discarded_inputs;
  if (!detail.empty()) detail += ";";
  detail += json;
}

absl::Status MeanReducer::Reduce(absl::Span<const ConstVec> in, absl::Span<const double> w,
                                 Vec out, const ReduceContext& ctx) const {
  return WeightedMean(in, w, out, ctx.pool);
}

namespace {

class MeanFactory final : public ReducerFactory {
 public:
  std::string name() const override { return "mean"; }
  absl::Status Validate(const ReducerCfg& c) const override {
    if (c.params().fields_size() > 0)
      return absl::InvalidArgumentError(absl::StrCat("algorithm.reducer.params.",
                                                     c.params().fields().begin()->first,
                                                     " is not a parameter of mean (it takes none)"));
    return absl::OkStatus();
  }
  absl::StatusOr<std::unique_ptr<Reducer>> Make(const ReducerCfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    return std::unique_ptr<Reducer>(new MeanReducer());
  }
  bool exact_mean() const override { return true; }
};

}  // namespace

absl::Status ReducerRegistry::Register(std::unique_ptr<ReducerFactory> f) {
  const std::string name = f->name();
  if (name.empty()) return absl::InvalidArgumentError("reducer factory with an empty name");
  if (factories_.count(name))
    return absl::AlreadyExistsError(absl::StrCat("reducer '", name, "' is already registered"));
  factories_.emplace(name, std::move(f));
  return absl::OkStatus();
}

absl::StatusOr<const ReducerFactory*> ReducerRegistry::Find(const std::string& name) const {
  auto it = factories_.find(name);
  if (it == factories_.end())
    return absl::InvalidArgumentError(absl::StrCat("algorithm.reducer.name must be one of ",
                                                   absl::StrJoin(Names(), ", "), "; got '",
                                                   name, "'"));
  return it->second.get();
}

std::vector<std::string> ReducerRegistry::Names() const {
  std::vector<std::string> names;
  for (const auto& kv : factories_) names.push_back(kv.first);
  return names;
}

absl::Status ReducerRegistry::Validate(const ReducerCfg& c) const {
  FT_ASSIGN_OR_RETURN(const ReducerFactory* f, Find(c.name()));
  if (c.f() < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("algorithm.reducer.f must be >= 0, got ", c.f()));
  if (c.nonfinite() != "zero" && c.nonfinite() != "error")
    return absl::InvalidArgumentError(absl::StrCat(
        "algorithm.reducer.nonfinite must be zero or error, got '", c.nonfinite(), "'"));
  return f->Validate(c);
}

absl::StatusOr<std::unique_ptr<Reducer>> ReducerRegistry::Make(const ReducerCfg& c) const {
  FT_RETURN_IF_ERROR(Validate(c));
  FT_ASSIGN_OR_RETURN(const ReducerFactory* f, Find(c.name()));
  return f->Make(c);
}

// The built-in reducers, one entry per name. Adding a rule: its <rule>_reducer.{h,cc} (maths,
// options, factory) and one line here.
void RegisterBuiltinReducers(ReducerRegistry* r) {
  std::unique_ptr<ReducerFactory> builtins[] = {
      std::make_unique<MeanFactory>(),     // mean
      NewMedianReducerFactory(),           // median
      NewTrimmedMeanReducerFactory(),      // trimmed_mean
      NewMeaMedReducerFactory(),           // meamed
      NewPhocasReducerFactory(),           // phocas
      NewKrumReducerFactory(false),        // krum
      NewKrumReducerFactory(true),         // multi_krum
      NewBulyanReducerFactory(),           // bulyan
      NewGeometricMedianReducerFactory(),  // geometric_median
      NewCenteredClippingReducerFactory(), // centered_clipping
      NewNnaReducerFactory(),              // nna
      NewFlagReducerFactory(),             // flag
  };
  for (std::unique_ptr<ReducerFactory>& f : builtins) FT_CHECK(r->Register(std::move(f)).ok());
}

absl::StatusOr<std::unique_ptr<Reducer>> MakeReducer(const ReducerCfg& c,
                                                     const ReducerRegistry* registry) {
  if (registry) return registry->Make(c);
  ReducerRegistry builtins;
  RegisterBuiltinReducers(&builtins);
  return builtins.Make(c);
}

absl::Status ValidateReducer(const ReducerCfg& c, const ReducerRegistry* registry) {
  if (registry) return registry->Validate(c);
  ReducerRegistry builtins;
  RegisterBuiltinReducers(&builtins);
  return builtins.Validate(c);
}

bool ReducerIsExactMean(const ReducerCfg& c, const ReducerRegistry* registry) {
  ReducerRegistry builtins;
  if (!registry) {
    RegisterBuiltinReducers(&builtins);
    registry = &builtins;
  }
  absl::StatusOr<const ReducerFactory*> f = registry->Find(c.name());
  return f.ok() && (*f)->exact_mean();
}

}  // namespace fedtrain
