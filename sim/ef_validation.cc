// The runs of the float64 error-feedback validation harness (docs/compression.md §4 for the
// problems and metrics, §2 for the methods): one run of a method on a problem (RunEf), and
// the grids of `fedtrain ef-validate` (PlanEfValidation checks a config and builds its
// problems and runs; RunEfValidation runs them). The problems are in ef_problems.cc, the
// table / CSV / JSON output in ef_report.cc. See ef_validation.h.
//
// Thread-compatible: RunEf is a pure function of its arguments (all randomness from
// RngStream keyed (seed, round, worker, purpose)); a plan is immutable once built.
#include "sim/ef_validation.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/rng.h"
#include "core/status_macros.h"
#include "sim/ef_validation_internal.h"

namespace fedtrain {

using ef_internal::kNaN;
using ef_internal::Num;

namespace {

double Norm2(absl::Span<const double> v) {
  double s = 0;
  for (double x : v) s += x * x;
  return s;
}

bool AllFinite(absl::Span<const double> v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

// ---- One run.

absl::StatusOr<EfMethod> ParseEfMethod(const std::string& name) {
  for (EfMethod m : {EfMethod::kGd, EfMethod::kNaive, EfMethod::kEf14A, EfMethod::kEf14B,
                     EfMethod::kEf21, EfMethod::kEf21W, EfMethod::kEControl})
    if (name == EfMethodName(m)) return m;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown method '", name, "'; known: gd, naive, ef14, ef14b, ef21, ef21w, econtrol"));
}

const char* EfMethodName(EfMethod m) {
  switch (m) {
    case EfMethod::kGd:
      return "gd";
    case EfMethod::kNaive:
      return "naive";
    case EfMethod::kEf14A:
      return "ef14";
    case EfMethod::kEf14B:
      return "ef14b";
    case EfMethod::kEf21:
      return "ef21";
    case EfMethod::kEf21W:
      return "ef21w";
    case EfMethod::kEControl:
      return "econtrol";
  }
  return "unknown";
}

namespace {

Feedback FeedbackOf(EfMethod m) {
  switch (m) {
    case EfMethod::kGd:
    case EfMethod::kNaive:
      return Feedback::kNone;
    case EfMethod::kEf14A:
    case EfMethod::kEf14B:
      return Feedback::kEf14;
    case EfMethod::kEf21:
      return Feedback::kEf21;
    case EfMethod::kEf21W:
      return Feedback::kEf21W;
    case EfMethod::kEControl:
      return Feedback::kEControl;
  }
  return Feedback::kNone;
}

// |grad f(x)|^2 with f = (1/n) sum f_i (exact gradients).
double FullGrad2(const EfProblem& p, absl::Span<const double> x, std::vector<double>* gi,
                 std::vector<double>* sum) {
  sum->assign(p.dim, 0.0);
  for (size_t i = 0; i < p.num_workers; ++i) {
    p.gradient(i, x, absl::MakeSpan(*gi));
    for (size_t j = 0; j < p.dim; ++j) (*sum)[j] += (*gi)[j];
  }
  for (double& v : *sum) v /= p.num_workers;
  return Norm2(*sum);
}

}  // namespace

absl::StatusOr<EfRunResult> RunEf(const EfProblem& p, const EfRunOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = p.num_workers, d = p.dim;
  if (n == 0 || d == 0 || !p.gradient || p.x0.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("problem '", p.name, "' is incomplete"));
  if (!(o.gamma > 0) || !std::isfinite(o.gamma))
    return absl::InvalidArgumentError(absl::StrCat("gamma must be > 0, got ", o.gamma));
  if (o.rounds <= 0)
    return absl::InvalidArgumentError(absl::StrCat("rounds must be > 0, got ", o.rounds));
  if (!(o.tail_fraction > 0 && o.tail_fraction <= 1))
    return absl::InvalidArgumentError(
        absl::StrCat("tail_fraction must be in (0, 1], got ", o.tail_fraction));
  for (int64_t r : o.report_rounds)
    if (r < 0 || r > o.rounds)
      return absl::InvalidArgumentError(
          absl::StrCat("report round ", r, " is outside [0, ", o.rounds, "]"));
  FeedbackOptions fo;
  fo.method = FeedbackOf(o.method);
  fo.eta = o.eta;
  fo.init = o.init;
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(fo));

  CompressorOptions co = o.compression;
  co.value_type = "f64";
  std::unique_ptr<Compressor> c, dense;
  if (o.method != EfMethod::kGd) {
    FT_ASSIGN_OR_RETURN(c, MakeCompressor(co, d));
    CompressorOptions id;
    id.compressor = "identity";
    id.value_type = "f64";
    FT_ASSIGN_OR_RETURN(dense, MakeCompressor(id, d));
  }

  // Tracker weights and input scales: EF21-W w_i = L_i / sum L_j, v_i = g_i / (n w_i).
  std::vector<double> weight(n, 1.0 / n), scale(n, 1.0);
  if (o.method == EfMethod::kEf21W) {
    double sum = 0;
    for (double l : p.smoothness) sum += l;
    if (p.smoothness.size() != n || !(sum > 0))
      return absl::InvalidArgumentError("ef21w needs the positive smoothness constants L_i");
    for (size_t i = 0; i < n; ++i) {
      if (!(p.smoothness[i] > 0))
        return absl::InvalidArgumentError(
            absl::StrCat("ef21w: L_", i, " = ", p.smoothness[i], " must be > 0"));
      weight[i] = p.smoothness[i] / sum;
      scale[i] = 1.0 / (n * weight[i]);
    }
  }
  if (o.method == EfMethod::kEf14A)
    for (double& s : scale) s = o.gamma;

  EfRunResult res;
  std::vector<double> x = p.x0, acc(d), g(d), v(d), sent(d), msg(d), gtmp(d), gsum(d);
  std::vector<FeedbackState> st(n);
  TrackerAggregate agg(d, n, o.init);
  const bool tracker = HasTracker(fo.method);
  const bool has_star = p.x_star.size() == d;
  const double noise_sd = p.noise_sigma / std::sqrt(static_cast<double>(d));
  const int64_t tail = std::max<int64_t>(
      1, static_cast<int64_t>(std::ceil(o.tail_fraction * static_cast<double>(o.rounds))));
  const int64_t tail_start = o.rounds - tail + 1;
  double tail_sum = 0;
  std::map<int64_t, double> grad2_at;
  std::set<int64_t> wanted(o.report_rounds.begin(), o.report_rounds.end());
  if (wanted.count(0)) grad2_at[0] = FullGrad2(p, x, &gtmp, &gsum);

  for (int64_t t = 0; t < o.rounds; ++t) {
    std::fill(acc.begin(), acc.end(), 0.0);
    bool finite = true;
    for (size_t i = 0; i < n && finite; ++i) {
      // Worker i, at the model it was sent.
      p.gradient(i, x, absl::MakeSpan(g));
      if (p.noise_sigma > 0) {
        RngStream rng = RngStream::For(p.noise_seed, t, i, Purpose::kMinibatch);
        for (size_t j = 0; j < d; ++j) g[j] += noise_sd * rng.Normal();
      }
      if (!AllFinite(g)) {
        finite = false;
        break;
      }
      if (o.method == EfMethod::kGd) {
        for (size_t j = 0; j < d; ++j) acc[j] += g[j];
        continue;
      }
      for (size_t j = 0; j < d; ++j) v[j] = scale[i] * g[j];
      if (!AllFinite(v)) {
        finite = false;
        break;
      }
      RngStream crng = RngStream::For(p.noise_seed, t, i, Purpose::kCompression);
      Encoded out;
      bool is_dense = false;
      FT_RETURN_IF_ERROR(FeedbackStep(fo, *c, *dense, v, crng, &st[i], &out,
                                      absl::MakeSpan(sent), &is_dense));
      // Server: decode what came over the wire and fold it in, in worker order.
      FT_RETURN_IF_ERROR((is_dense ? dense : c)->Decode(out, absl::MakeSpan(msg)));
      (is_dense ? res.dense_bits : res.compressed_bits) += 8 * out.bytes.size();
      if (tracker) {
        FT_RETURN_IF_ERROR(agg.Check(i, is_dense));
        agg.Add(i, absl::Span<const double>(msg), is_dense, weight[i]);
      } else {
        for (size_t j = 0; j < d; ++j) acc[j] += msg[j];
      }
    }
    if (finite) {
      // The server moves the model.
      const absl::Span<const double> h = agg.h();
      for (size_t j = 0; j < d; ++j) {
        switch (o.method) {
          case EfMethod::kGd:
          case EfMethod::kNaive:
          case EfMethod::kEf14B:
            x[j] -= o.gamma * (acc[j] / n);
            break;
          case EfMethod::kEf14A:
            x[j] -= acc[j] / n;
            break;
          case EfMethod::kEf21:
          case EfMethod::kEf21W:
          case EfMethod::kEControl:
            x[j] -= o.gamma * h[j];
            break;
        }
      }
      finite = AllFinite(x);
    }
    if (!finite) {
      res.diverged = true;
      res.diverged_at = t;
      break;
    }
    res.rounds_run = t + 1;
    if (has_star && t + 1 >= tail_start) {
      double s = 0;
      for (size_t j = 0; j < d; ++j) s += (x[j] - p.x_star[j]) * (x[j] - p.x_star[j]);
      tail_sum += s;
    }
    if (wanted.count(t + 1)) grad2_at[t + 1] = FullGrad2(p, x, &gtmp, &gsum);
    if (o.on_iterate) o.on_iterate(t + 1, x);
  }

  if (!res.diverged) {
    if (has_star) {
      res.dist2_tail = tail_sum / tail;
      double s = 0;
      for (size_t j = 0; j < d; ++j) s += (x[j] - p.x_star[j]) * (x[j] - p.x_star[j]);
      res.final_dist = std::sqrt(s);
    }
    res.final_grad2 = FullGrad2(p, x, &gtmp, &gsum);
  }
  for (int64_t r : o.report_rounds) {
    auto it = grad2_at.find(r);
    res.grad2.push_back(it == grad2_at.end() ? kNaN : it->second);
  }
  res.x = std::move(x);
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return res;
}

// ---- Config grids.

namespace {

absl::Status Bad(const std::string& field, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
}

absl::Status CheckStepMean(const std::string& field, const std::string& v) {
  if (v != "qm" && v != "am") return Bad(field, absl::StrCat("must be \"qm\" or \"am\", got \"", v, "\""));
  return absl::OkStatus();
}

// Caches the data set so a config with several logreg experiments reads it once.
struct DataCache {
  std::string path;
  std::unique_ptr<BinaryData> data;
  absl::StatusOr<const BinaryData*> Get(const std::string& p) {
    if (!data || path != p) {
      FT_ASSIGN_OR_RETURN(BinaryData d, LoadBreastCancerCsv(p));
      data = std::make_unique<BinaryData>(std::move(d));
      path = p;
    }
    return data.get();
  }
};

absl::StatusOr<EfProblem> BuildProblem(const v1::EfProblemConfig& pc, const std::string& field,
                                       uint64_t seed, const std::string& csv, DataCache* cache) {
  const std::string& kind = pc.kind();
  if (pc.has_num_workers() && pc.num_workers() <= 0)
    return Bad(field + ".num_workers", absl::StrCat("must be > 0, got ", pc.num_workers()));
  if (!(pc.sigma() >= 0) || !std::isfinite(pc.sigma()))
    return Bad(field + ".sigma", absl::StrCat("must be >= 0, got ", pc.sigma()));
  if (kind == "three_workers") {
    if (pc.has_num_workers() && pc.num_workers() != 3)
      return Bad(field + ".num_workers", "three_workers has exactly 3 workers");
    EfProblem p = ThreeWorkerProblem();
    p.noise_sigma = pc.sigma();
    p.noise_seed = seed;
    return p;
  }
  if (kind == "quadratics") {
    if (pc.dim() <= 0) return Bad(field + ".dim", absl::StrCat("must be > 0, got ", pc.dim()));
    if (!(pc.zeta() >= 0) || !std::isfinite(pc.zeta()))
      return Bad(field + ".zeta", absl::StrCat("must be >= 0, got ", pc.zeta()));
    QuadraticsOptions o;
    o.num_workers = pc.has_num_workers() ? pc.num_workers() : 10;
    o.dim = pc.dim();
    o.zeta = pc.zeta();
    o.sigma = pc.sigma();
    o.seed = seed;
    return HeterogeneousQuadratics(o);
  }
  if (kind == "logreg") {
    if (!(pc.lambda() >= 0) || !std::isfinite(pc.lambda()))
      return Bad(field + ".lambda", absl::StrCat("must be >= 0, got ", pc.lambda()));
    if (!(pc.init_stddev() >= 0) || !std::isfinite(pc.init_stddev()))
      return Bad(field + ".init_stddev", absl::StrCat("must be >= 0, got ", pc.init_stddev()));
    if (!(pc.scale_last_worker() > 0) || !std::isfinite(pc.scale_last_worker()))
      return Bad(field + ".scale_last_worker",
                 absl::StrCat("must be > 0, got ", pc.scale_last_worker()));
    FT_ASSIGN_OR_RETURN(const BinaryData* data, cache->Get(csv));
    LogRegOptions o;
    o.num_workers = pc.has_num_workers() ? pc.num_workers() : 20;
    if (o.num_workers > data->rows)
      return Bad(field + ".num_workers", absl::StrCat("at most ", data->rows,
                                                      " (one sample each), got ", o.num_workers));
    o.lambda = pc.lambda();
    o.init_stddev = pc.init_stddev();
    o.scale_last_worker = pc.scale_last_worker();
    o.sigma = pc.sigma();
    o.seed = seed;
    return NonconvexLogReg(*data, o);
  }
  return Bad(field + ".kind", absl::StrCat("unknown problem '", kind,
                                           "'; known: three_workers, quadratics, logreg"));
}

}  // namespace

absl::StatusOr<EfValidationPlan> PlanEfValidation(const v1::EfValidationConfig& cfg) {
  EfValidationPlan plan;
  plan.name = cfg.name();
  if (cfg.experiments_size() == 0)
    return Bad("experiments", "the config lists no experiment");
  DataCache cache;
  std::set<std::string> names;
  for (int e = 0; e < cfg.experiments_size(); ++e) {
    const v1::EfExperimentConfig& ec = cfg.experiments(e);
    const std::string f = absl::StrCat("experiments[", e, "]");
    EfExperimentPlan ep;
    ep.name = ec.has_name() ? ec.name() : absl::StrCat("experiment", e);
    if (!names.insert(ep.name).second)
      return Bad(f + ".name", absl::StrCat("'", ep.name, "' is used twice"));
    if (!ec.has_problem() || !ec.problem().has_kind())
      return Bad(f + ".problem.kind",
                 "missing; one of three_workers, quadratics, logreg is needed");
    if (ec.rounds() <= 0) return Bad(f + ".rounds", absl::StrCat("must be > 0, got ", ec.rounds()));
    if (!(ec.tail_fraction() > 0 && ec.tail_fraction() <= 1))
      return Bad(f + ".tail_fraction", absl::StrCat("must be in (0, 1], got ", ec.tail_fraction()));
    for (int r = 0; r < ec.report_rounds_size(); ++r)
      if (ec.report_rounds(r) < 0 || ec.report_rounds(r) > ec.rounds())
        return Bad(absl::StrCat(f, ".report_rounds[", r, "]"),
                   absl::StrCat("must be in [0, rounds = ", ec.rounds(), "], got ",
                                ec.report_rounds(r)));
    if (ec.gamma_size() == 0 && ec.gamma_factor_size() == 0)
      return Bad(f + ".gamma", "no step size: give gamma and/or gamma_factor");
    for (int g = 0; g < ec.gamma_size(); ++g)
      if (!(ec.gamma(g) > 0) || !std::isfinite(ec.gamma(g)))
        return Bad(absl::StrCat(f, ".gamma[", g, "]"), absl::StrCat("must be > 0, got ", ec.gamma(g)));
    for (int g = 0; g < ec.gamma_factor_size(); ++g)
      if (!(ec.gamma_factor(g) > 0) || !std::isfinite(ec.gamma_factor(g)))
        return Bad(absl::StrCat(f, ".gamma_factor[", g, "]"),
                   absl::StrCat("must be > 0, got ", ec.gamma_factor(g)));
    FT_RETURN_IF_ERROR(CheckStepMean(f + ".step_mean", ec.step_mean()));
    if (ec.methods_size() == 0) return Bad(f + ".methods", "no method listed");

    // Methods (checked before the problem is built, so config errors come before file errors).
    struct MethodRun {
      EfMethod method;
      double eta;
      TrackerInit init;
      std::string step_mean, label;
    };
    std::vector<MethodRun> method_runs;
    for (int m = 0; m < ec.methods_size(); ++m) {
      const v1::EfMethodConfig& mc = ec.methods(m);
      const std::string mf = absl::StrCat(f, ".methods[", m, "]");
      absl::StatusOr<EfMethod> method = ParseEfMethod(mc.method());
      if (!method.ok()) return Bad(mf + ".method", std::string(method.status().message()));
      TrackerInit init;
      if (mc.init() == "dense") {
        init = TrackerInit::kDense;
      } else if (mc.init() == "compressed") {
        init = TrackerInit::kCompressed;
      } else {
        return Bad(mf + ".init",
                   absl::StrCat("must be \"dense\" or \"compressed\", got \"", mc.init(), "\""));
      }
      const std::string mean = mc.has_step_mean() ? mc.step_mean() : ec.step_mean();
      if (mc.has_step_mean()) FT_RETURN_IF_ERROR(CheckStepMean(mf + ".step_mean", mean));
      if (*method == EfMethod::kEControl) {
        if (mc.eta_size() == 0) return Bad(mf + ".eta", "econtrol needs at least one eta");
        for (int k = 0; k < mc.eta_size(); ++k) {
          const double eta = mc.eta(k);
          if (!(eta >= 0 && eta < 1))
            return Bad(absl::StrCat(mf, ".eta[", k, "]"),
                       absl::StrCat("must be in [0, 1), got ", eta));
          std::string label =
              mc.has_label() ? mc.label() : absl::StrCat("econtrol eta=", Num(eta));
          if (mc.has_label() && mc.eta_size() > 1) label = absl::StrCat(mc.label(), " eta=", Num(eta));
          method_runs.push_back({*method, eta, init, mean, label});
        }
      } else {
        if (mc.eta_size() > 0) return Bad(mf + ".eta", "eta applies to econtrol only");
        std::string label = mc.has_label() ? mc.label() : EfMethodName(*method);
        if (!mc.has_label() && mc.has_step_mean()) label += absl::StrCat(" (", mean, ")");
        method_runs.push_back({*method, 0.0, init, mean, label});
      }
    }

    FT_ASSIGN_OR_RETURN(ep.problem, BuildProblem(ec.problem(), f + ".problem", cfg.seed(),
                                                 cfg.breast_cancer_csv(), &cache));
    CompressorOptions co;
    const v1::EfCompressionConfig& cc = ec.compression();
    co.compressor = cc.compressor();
    co.k = cc.k();
    co.k_fraction = cc.k_fraction();
    co.levels = cc.levels();
    co.bucket = cc.bucket();
    co.value_type = "f64";
    {
      absl::StatusOr<std::unique_ptr<Compressor>> c = MakeCompressor(co, ep.problem.dim);
      if (!c.ok()) {
        // Config errors (bad k, unknown compressor) name the field inside compression.
        return Bad(f + ".compression", std::string(c.status().message()));
      }
      ep.delta = (*c)->info().delta;
    }
    const EfProblem& p = ep.problem;
    const bool factors = ec.gamma_factor_size() > 0;
    if (factors && !(ep.delta > 0))
      return Bad(f + ".gamma_factor",
                 absl::StrCat("compressor '", co.compressor, "' is not contractive (delta = 0)"));
    if (ep.delta > 0) {
      ep.gamma_theory_qm = Ef21TheoryStep(p.l, p.l_qm(), ep.delta);
      ep.gamma_theory_am = Ef21TheoryStep(p.l, p.l_am(), ep.delta);
    }
    ep.report_rounds.assign(ec.report_rounds().begin(), ec.report_rounds().end());
    std::string problem_desc = p.name;
    if (ec.problem().kind() == "quadratics")
      absl::StrAppend(&problem_desc, " zeta=", Num(ec.problem().zeta()));
    if (ec.problem().kind() == "logreg" && ec.problem().scale_last_worker() != 1)
      absl::StrAppend(&problem_desc, " last worker x", Num(ec.problem().scale_last_worker()));
    if (p.noise_sigma > 0) absl::StrAppend(&problem_desc, " sigma=", Num(p.noise_sigma));
    ep.description = absl::StrCat(
        problem_desc, " n=", p.num_workers, " d=", p.dim, "; ", co.compressor,
        co.compressor == "topk" || co.compressor == "randk" ? absl::StrCat(" k=", co.k) : "",
        " delta=", Num(ep.delta), "; L=", Num(p.l), " L_AM=", Num(p.l_am()),
        " L_QM=", Num(p.l_qm()),
        ep.delta > 0 ? absl::StrCat(" gamma_QM=", Num(ep.gamma_theory_qm),
                                    " gamma_AM=", Num(ep.gamma_theory_am))
                     : "",
        "; ", ec.rounds(), " rounds");

    auto add = [&](const MethodRun& mr, double gamma, double factor) {
      EfRunSpec s;
      s.label = mr.label;
      s.gamma_factor = factor;
      s.step_mean = factor > 0 ? mr.step_mean : "";
      s.options.method = mr.method;
      s.options.gamma = gamma;
      s.options.eta = mr.eta;
      s.options.init = mr.init;
      s.options.compression = co;
      s.options.rounds = ec.rounds();
      s.options.report_rounds = ep.report_rounds;
      s.options.tail_fraction = ec.tail_fraction();
      ep.runs.push_back(std::move(s));
    };
    for (double gamma : ec.gamma())
      for (const MethodRun& mr : method_runs) add(mr, gamma, 0.0);
    for (double factor : ec.gamma_factor())
      for (const MethodRun& mr : method_runs)
        add(mr, factor * (mr.step_mean == "am" ? ep.gamma_theory_am : ep.gamma_theory_qm),
            factor);
    plan.experiments.push_back(std::move(ep));
  }
  return plan;
}

absl::StatusOr<EfValidationReport> RunEfValidation(
    const EfValidationPlan& plan, const std::function<void(const EfRow&)>& on_row) {
  const auto start = std::chrono::steady_clock::now();
  EfValidationReport report;
  for (size_t e = 0; e < plan.experiments.size(); ++e) {
    const EfExperimentPlan& ep = plan.experiments[e];
    for (size_t r = 0; r < ep.runs.size(); ++r) {
      absl::StatusOr<EfRunResult> res = RunEf(ep.problem, ep.runs[r].options);
      if (!res.ok())
        return absl::Status(res.status().code(),
                            absl::StrCat("experiment '", ep.name, "', run '", ep.runs[r].label,
                                         "': ", res.status().message()));
      EfRow row;
      row.experiment = e;
      row.run = r;
      row.result = std::move(res).value();
      if (on_row) on_row(row);
      report.rows.push_back(std::move(row));
    }
  }
  report.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace fedtrain
