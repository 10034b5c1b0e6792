#include "cli/privacy_cmd.h"

#include <cmath>
#include <cstdint>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aggregators/registry.h"
#include "cli/flags.h"
#include "compression/privacy_accountant.h"
#include "core/metrics.h"
#include "proto/config_io.h"
#include "runtime/experiment.h"
#include "runtime/privacy_setup.h"

namespace fedtrain {

const char kPrivacyHelp[] = R"(usage: fedtrain privacy --config FILE [--set key=value ...] [--dim D]
       fedtrain privacy --mechanism rqm|gaussian [options]

Prints the privacy accountant's answer as one JSON object, without training.

With --config: the (epsilon, delta) guarantee after the config's rounds, against the
configured privacy.guarantee, for a model of the config's size (the data set is loaded to
find it, unless --dim gives it), with privacy.range_extension calibrated first when
privacy.target_epsilon is set. The most-used client is assumed to take part in every round
unless privacy.amplification applies.

With flags (a quick question):
  --mechanism M        rqm or gaussian
  --rounds T           rounds (default 1)
  --delta D            delta of the (epsilon, delta) guarantee (default 1e-5)
  --sampling S         poisson or fixed client sampling at --rate; giving it claims
                       amplification by sampling, which assumes the adversary sees only the
                       aggregate and not who took part (trusted aggregator, secret sampling)
  --rate R             Poisson rate p or K/N (default 1)
  --guarantee G        untrusted_server or trusted_aggregator (default: trusted_aggregator
                       for the central and distributed Gaussian, untrusted_server otherwise)
  --dim D              coordinates per message (rqm, local gaussian; default 1)
  gaussian: --noise-multiplier Z, --placement central|distributed|local (default central)
  rqm:      --clip C (1), --range-extension DELTA, --levels M (8), --keep-prob Q (0.5)
  --target-epsilon E   instead of epsilon, print the smallest noise (rqm: range extension;
                       gaussian: noise multiplier) that meets epsilon <= E after the rounds
  --order A            use the single Renyi order A (instead of the default grid) and also
                       print "rdp", the composed RDP at that order

Exit 1 when the question has no answer (a refused combination, an unreachable target), 2 on
bad usage.
)";

namespace {

bool ParseDouble(const std::string& s, double* out) { return absl::SimpleAtod(s, out); }

std::string Answer(const AccountantOptions& o, uint64_t rounds, double epsilon_target,
                   double calibrated, const DpGuarantee& g) {
  MetricsRow row;
  row.Set("mechanism", o.mechanism)
      .Set("guarantee", GuaranteeName(o.guarantee))
      .Set("amplification", static_cast<int64_t>(o.amplification))
      .Set("sampling", o.sampling)
      .Set("rate", o.rate)
      .Set("rounds", static_cast<int64_t>(rounds))
      .Set("dim", static_cast<int64_t>(o.dim))
      .Set("epsilon", g.epsilon)
      .Set("delta", g.delta)
      .Set("rdp_order", g.order)
      .Set("conversion", g.tight ? "canonne_kamath_steinke" : "mironov");
  if (o.mechanism == "rqm") {
    row.Set("clip", o.rqm.clip)
        .Set("range_extension", o.rqm.delta)
        .Set("levels", o.rqm.levels)
        .Set("keep_prob", o.rqm.keep);
  } else {
    row.Set("placement", o.placement).Set("noise_multiplier", o.noise_multiplier);
  }
  if (epsilon_target > 0) row.Set("target_epsilon", epsilon_target).Set("calibrated", calibrated);
  return row.ToJson();
}

}  // namespace

int PrivacyCommand(const std::vector<std::string>& args, std::FILE* out) {
  std::string config, mechanism, sampling, guarantee, placement = "central";
  std::vector<std::string> sets;
  int64_t rounds = 1, dim = 0, levels = 8;
  double delta = 1e-5, rate = 1.0, z = 0.0, clip = 1.0, range = 0.0, keep = 0.5, target = 0.0;
  double order = 0.0;
  auto num = [](double* v) { return [v](const std::string& s) { return ParseDouble(s, v); }; };
  Flags flags(kPrivacyHelp);
  flags.String("--config", &config, "--config needs a file", true)
      .Append("--set", &sets, "--set needs key=value")
      .String("--mechanism", &mechanism, "--mechanism needs rqm or gaussian", true)
      .Int("--rounds", &rounds, 1, "--rounds needs an integer >= 1")
      .Int("--dim", &dim, 1, "--dim needs an integer >= 1")
      .Int("--levels", &levels, 2, "--levels needs an integer >= 2")
      .Custom("--delta", num(&delta), "--delta needs a number")
      .String("--sampling", &sampling, "--sampling needs poisson or fixed", true)
      .Custom("--rate", num(&rate), "--rate needs a number")
      .String("--guarantee", &guarantee, "--guarantee needs untrusted_server or trusted_aggregator", true)
      .String("--placement", &placement, "--placement needs central, distributed or local", true)
      .Custom("--noise-multiplier", num(&z), "--noise-multiplier needs a number")
      .Custom("--clip", num(&clip), "--clip needs a number")
      .Custom("--range-extension", num(&range), "--range-extension needs a number")
      .Custom("--keep-prob", num(&keep), "--keep-prob needs a number")
      .Custom("--target-epsilon", num(&target), "--target-epsilon needs a number")
      .Custom("--order", num(&order), "--order needs a number > 1");
  if (int rc = flags.Parse(args); rc >= 0) return rc;
  if (config.empty() == mechanism.empty())
    return flags.Usage("privacy needs either --config FILE or --mechanism M");

  if (!config.empty()) {
    absl::StatusOr<v1::ExperimentConfig> cfg = LoadConfigFile(config);
    if (!cfg.ok()) return Fail("privacy", std::string(cfg.status().message()));
    for (const std::string& s : sets)
      if (absl::Status st = ApplyOverride(s, &*cfg); !st.ok())
        return Fail("privacy", std::string(st.message()));
    AlgorithmRegistry registry;
    RegisterBuiltinAlgorithms(&registry);
    absl::StatusOr<v1::ExperimentConfig> resolved = ResolveConfig(*cfg, registry);
    if (!resolved.ok()) return Fail("privacy", std::string(resolved.status().message()));
    if (resolved->privacy().mechanism() == "none")
      return Fail("privacy", "the config has privacy.mechanism none: nothing to account");
    if (dim == 0) {
      absl::StatusOr<ExperimentData> data = LoadExperimentData(*resolved);
      if (!data.ok()) return Fail("privacy", std::string(data.status().message()));
      dim = static_cast<int64_t>(ConfigModelParams(*resolved, *data));
    }
    absl::StatusOr<std::optional<PrivacyPlan>> plan =
        MakePrivacyPlan(*resolved, static_cast<size_t>(dim));
    if (!plan.ok()) return Fail("privacy", std::string(plan.status().message()));
    const uint64_t t = static_cast<uint64_t>(resolved->rounds());
    const DpGuarantee g = (*plan)->accountant->After(t, t);
    AccountantOptions o = (*plan)->accountant->options();
    const double calibrated = o.mechanism == "rqm" ? o.rqm.delta : o.noise_multiplier;
    std::fprintf(out, "%s\n",
                 Answer(o, t, resolved->privacy().target_epsilon(), calibrated, g).c_str());
    return 0;
  }

  AccountantOptions o;
  o.mechanism = mechanism;
  o.delta = delta;
  o.rate = rate;
  o.dim = static_cast<uint64_t>(dim == 0 ? 1 : dim);
  o.placement = placement;
  o.noise_multiplier = z;
  o.rqm.clip = clip;
  o.rqm.delta = range;
  o.rqm.levels = levels;
  o.rqm.keep = keep;
  if (order != 0) {
    if (!(order > 1)) return flags.Usage("--order needs a number > 1");
    o.orders = {order};
  }
  if (!sampling.empty()) {
    o.sampling = sampling;
    o.amplification = o.secret_sampling = true;
  }
  if (guarantee.empty())
    guarantee = mechanism == "gaussian" && placement != "local" ? "trusted_aggregator"
                                                               : "untrusted_server";
  if (guarantee == "trusted_aggregator") {
    o.guarantee = PrivacyGuarantee::kTrustedAggregator;
  } else if (guarantee == "untrusted_server") {
    o.guarantee = PrivacyGuarantee::kUntrustedServer;
  } else {
    return flags.Usage(absl::StrCat("--guarantee '", guarantee, "' is unknown"));
  }
  const uint64_t t = static_cast<uint64_t>(rounds);
  double calibrated = 0.0;
  if (target > 0) {
    absl::StatusOr<double> v = mechanism == "rqm" ? CalibrateRqmDelta(o, t, target)
                                                  : CalibrateNoiseMultiplier(o, t, target);
    if (!v.ok()) return Fail("privacy", std::string(v.status().message()));
    calibrated = *v;
    (mechanism == "rqm" ? o.rqm.delta : o.noise_multiplier) = calibrated;
  }
  absl::StatusOr<PrivacyAccountant> acc = PrivacyAccountant::Create(o);
  if (!acc.ok()) return Fail("privacy", std::string(acc.status().message()));
  std::string json = Answer(o, t, target, calibrated, acc->After(t, t));
  if (order != 0) {
    const double per = (o.amplification ? acc->round_rdp() : acc->message_rdp())[0];
    json.pop_back();  // the closing brace
    absl::StrAppend(&json, ",\"order\":", order, ",\"rdp\":",
                    absl::StrFormat("%.17g", per * static_cast<double>(t)), "}");
  }
  std::fprintf(out, "%s\n", json.c_str());
  return 0;
}

}  // namespace fedtrain
