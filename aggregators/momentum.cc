// FedAvg-M, SCAFFOLD-M and their VR variants (docs/federated.md §3); see momentum.h.
#include "aggregators/momentum.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "aggregators/scaffold.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {


}  // namespace

absl::StatusOr<std::vector<float>> ReconstructPreviousModel(const Payload& down) {
  auto it = down.scalars.find(kPrevScaleKey);
  if (down.parts.size() < 2 || down.parts[0].size() != down.parts[1].size() ||
      it == down.scalars.end())
    return absl::InvalidArgumentError(
        "momentum down payload must hold x, g (equal sizes) and the scalar 'prev_scale'");
  const float s = static_cast<float>(it->second);
  std::vector<float> prev = down.parts[0];
  const std::vector<float>& g = down.parts[1];
  for (size_t j = 0; j < prev.size(); ++j) prev[j] += s * g[j];
  return prev;
}

absl::Status MomentumServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  s->vectors[kMomentumGradientKey].assign(x0.size(), 0.0f);  // g^0 = 0 (§6 default; no warm-up round)
  if (o_.control_variates) s->vectors[kControlVariateKey].assign(x0.size(), 0.0f);
  s->vectors[kPrevScaleKey].assign(1, 0.0f);  // x^{-1} = x^0
  return absl::OkStatus();
}

absl::Status MomentumServer::DownPayload(const ServerState& s, Payload* down) const {
  auto g = s.vectors.find(kMomentumGradientKey);
  auto ps = s.vectors.find(kPrevScaleKey);
  FT_CHECK(g != s.vectors.end() && g->second.size() == s.x.size());
  FT_CHECK(ps != s.vectors.end() && ps->second.size() == 1);
  down->parts = {s.x, g->second};
  if (o_.control_variates) {
    auto c = s.vectors.find(kControlVariateKey);
    FT_CHECK(c != s.vectors.end() && c->second.size() == s.x.size());
    down->parts.push_back(c->second);
  }
  down->scalars.clear();
  down->scalars[kPrevScaleKey] = ps->second[0];
  return absl::OkStatus();
}

absl::Status MomentumServer::CheckUpdate(const ClientUpdate& u) const {
  if (u.steps <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("reported K_i = ", u.steps, " local steps; the momentum server divides by K_i"));
  return absl::OkStatus();
}

absl::Status MomentumServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                    ServerState* s) {
  const size_t d = s->x.size();
  std::vector<float>& g = s->vectors[kMomentumGradientKey];
  std::vector<float>& prev_scale = s->vectors[kPrevScaleKey];
  FT_CHECK(g.size() == d && prev_scale.size() == 1);
  if (updates.empty()) {
    prev_scale[0] = 0.0f;  // x did not move: x^{r} = x^{r-1}
    return absl::OkStatus();
  }
  // The default mode divides the deltas by the rate that produced them.
  const double lr = info.lr;
  if (!o_.explicit_gamma() && !(lr > 0))
    return absl::InvalidArgumentError(absl::StrCat(
        "momentum: RoundInfo.lr (the round's local learning rate) must be > 0 without "
        "algorithm.params.gamma; got ", lr));
  const size_t parts = num_up_parts();
  for (const ClientUpdate& u : updates) {
    if (u.parts.size() != parts)
      return absl::InvalidArgumentError(absl::StrCat("client ", u.id, ": expected ", parts,
                                                     " up parts, got ", u.parts.size()));
    FT_RETURN_IF_ERROR(CheckUpdate(u));
  }
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, o_.weighting, &w));
  const std::vector<uint64_t> ids = ClientIds(updates);
  // c first, into a copy, so that a bad update changes nothing.
  std::vector<float> c_new;
  if (o_.control_variates) {
    c_new = s->vectors[kControlVariateKey];
    FT_CHECK(c_new.size() == d);
    FT_RETURN_IF_ERROR(ReduceControlVariateDeltas(updates, 1, info, *reducer_, s, ids, &c_new));
  }

  mean_.resize(d);
  bool equal_k = true;
  for (const ClientUpdate& u : updates) equal_k = equal_k && u.steps == updates[0].steps;
  std::vector<ConstVec> in;
  in.reserve(updates.size());
  if (o_.explicit_gamma() || equal_k) {
    for (const ClientUpdate& u : updates) in.push_back(u.parts[0]);
    FT_RETURN_IF_ERROR(reducer_->Reduce(in, w, absl::MakeSpan(mean_),
                                        RoundReduceContext(info, s, "momentum.g", ids)));
  }
  if (o_.explicit_gamma()) {
    // s_i = gamma Delta_i / (eta K_i): x += mean(s), g = -mean(s) / gamma.
    for (size_t j = 0; j < d; ++j) {
      s->x[j] += mean_[j];
      g[j] = static_cast<float>(-static_cast<double>(mean_[j]) / o_.gamma);
    }
    prev_scale[0] = static_cast<float>(o_.gamma);
  } else if (equal_k) {
    // x += eta_g mean(Delta) (FedAvg's step, bit for bit); g = -mean(Delta) / (eta^r K),
    // formed as (-mean(Delta) / K) / eta^r, rounding to float after each division.
    const double k = static_cast<double>(updates[0].steps);
    const float eta = static_cast<float>(o_.server_lr);
    for (size_t j = 0; j < d; ++j) {
      s->x[j] += eta * mean_[j];
      const float lr_units = static_cast<float>(-static_cast<double>(mean_[j]) / k);
      g[j] = static_cast<float>(static_cast<double>(lr_units) / lr);
    }
    prev_scale[0] = static_cast<float>(o_.server_lr * k * lr);
  } else {
    // Different K_i: g = -mean(Delta_i / K_i) / eta^r, x += eta_g Kbar mean(Delta_i / K_i)
    // with Kbar = sum w_i K_i.
    std::vector<std::vector<float>> scaled(updates.size(), std::vector<float>(d));
    double kbar = 0.0;
    for (size_t i = 0; i < updates.size(); ++i) {
      const double inv_k = 1.0 / static_cast<double>(updates[i].steps);
      ConstVec delta = updates[i].parts[0];
      if (delta.size() != d)
        return absl::InvalidArgumentError(absl::StrCat("client ", updates[i].id, ": delta has ",
                                                       delta.size(), " floats; model has ", d));
      for (size_t j = 0; j < d; ++j) scaled[i][j] = static_cast<float>(delta[j] * inv_k);
      in.push_back(scaled[i]);
      kbar += w[i] * static_cast<double>(updates[i].steps);
    }
    FT_RETURN_IF_ERROR(reducer_->Reduce(in, w, absl::MakeSpan(mean_),
                                        RoundReduceContext(info, s, "momentum.g", ids)));
    const double step = o_.server_lr * kbar;
    for (size_t j = 0; j < d; ++j) {
      s->x[j] = static_cast<float>(s->x[j] + step * mean_[j]);
      g[j] = static_cast<float>(-static_cast<double>(mean_[j]) / lr);
    }
    prev_scale[0] = static_cast<float>(step * lr);
  }
  if (o_.control_variates) s->vectors[kControlVariateKey] = std::move(c_new);
  return absl::OkStatus();
}

absl::Status MomentumClient::LocalUpdate(const Payload& down, LocalContext& ctx,
                                         ClientState* state, Payload* up,
                                         LocalResult* result) const {
  const size_t d = ctx.trainer->dim();
  const size_t want = o_.control_variates ? 3 : 2;
  bool ok = down.parts.size() == want;
  for (size_t p = 0; ok && p < want; ++p) ok = down.parts[p].size() == d;
  if (!ok)
    return absl::InvalidArgumentError(absl::StrCat(
        "momentum: down payload must be ", o_.control_variates ? "(x, g, c)" : "(x, g)", " of ", d,
        " floats each"));
  const std::vector<float>& x = down.parts[0];
  const std::vector<float>& g = down.parts[1];  // gradient units in both modes (momentum.h)
  const double eta = ctx.sgd.lr;
  if (!(eta > 0)) return absl::InvalidArgumentError(absl::StrCat("local.lr must be > 0, got ", eta));
  const float beta = static_cast<float>(o_.beta);
  const float one_minus_beta = static_cast<float>(1.0 - o_.beta);

  std::vector<float> ci, corr;  // c_i and c - c_i (SCAFFOLD-M)
  if (o_.control_variates) {
    FT_ASSIGN_OR_RETURN(ci, LoadControlVariate(*state, d));
    const std::vector<float>& c = down.parts[2];
    corr.resize(d);
    for (size_t j = 0; j < d; ++j) corr[j] = c[j] - ci[j];
  }
  const bool second_gradient = o_.variance_reduction && one_minus_beta != 0.0f;
  std::vector<float> x_prev, g_prev(second_gradient ? d : 0);
  if (second_gradient) {
    FT_ASSIGN_OR_RETURN(x_prev, ReconstructPreviousModel(down));
  }
  std::vector<double> raw_sum(o_.control_variates ? d : 0, 0.0);

  GradientFn fn;
  if (o_.control_variates || second_gradient) {
    Trainer* trainer = ctx.trainer;
    const float wd = static_cast<float>(ctx.sgd.weight_decay);
    fn = [&, trainer, wd](ConstVec y, const Batch& b, Vec grad) -> absl::StatusOr<double> {
      FT_ASSIGN_OR_RETURN(const double loss, trainer->Gradient(y, b, grad));
      if (o_.control_variates)
        for (size_t j = 0; j < d; ++j) raw_sum[j] += grad[j];
      if (second_gradient) {
        // grad F_i(x^{r-1}; same minibatch), + weight decay as the fresh gradient gets.
        FT_RETURN_IF_ERROR(trainer->Gradient(x_prev, b, absl::MakeSpan(g_prev)).status());
        if (wd > 0)
          for (size_t j = 0; j < d; ++j) g_prev[j] += wd * x_prev[j];
      }
      return loss;
    };
  }
  GradientHook hook;
  if (!o_.variance_reduction) {
    hook = [&](ConstVec, Vec v) {
      if (o_.control_variates)
        for (size_t j = 0; j < d; ++j) v[j] += corr[j];
      if (one_minus_beta == 0.0f) return;  // beta = 1: plain FedAvg / SCAFFOLD step
      for (size_t j = 0; j < d; ++j) v[j] = beta * v[j] + one_minus_beta * g[j];
    };
  } else {
    hook = [&](ConstVec, Vec v) {
      if (o_.control_variates)
        for (size_t j = 0; j < d; ++j) v[j] += beta * corr[j];
      if (!second_gradient) return;
      for (size_t j = 0; j < d; ++j) v[j] += one_minus_beta * (g[j] - g_prev[j]);
    };
  }

  std::vector<float> y = x;
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng,
                                                    absl::MakeSpan(y), hook, fn));
  if (r.steps <= 0) return absl::InternalError("momentum: local SGD ran no steps");
  const double k = static_cast<double>(r.steps);

  std::vector<float> s_up(d);
  if (o_.explicit_gamma()) {
    const double scale = o_.gamma / (eta * k);
    for (size_t j = 0; j < d; ++j)
      s_up[j] = static_cast<float>((static_cast<double>(y[j]) - x[j]) * scale);
  } else {
    for (size_t j = 0; j < d; ++j) s_up[j] = y[j] - x[j];  // Delta_i
  }
  up->parts.clear();
  up->parts.push_back(std::move(s_up));
  up->scalars.clear();
  if (o_.control_variates) {
    std::vector<float> ci_plus(d), dc(d);
    for (size_t j = 0; j < d; ++j) {
      ci_plus[j] = static_cast<float>(raw_sum[j] / k);
      dc[j] = ci_plus[j] - ci[j];
    }
    up->parts.push_back(std::move(dc));
    state->vectors[kControlVariateKey] = std::move(ci_plus);
  }
  result->steps = r.steps;
  result->train_loss = r.mean_loss;
  return absl::OkStatus();
}

absl::Status MomentumClient::CommitSent(const Payload& up, const Payload& sent,
                                        ClientState* state) const {
  if (!o_.control_variates) return absl::OkStatus();
  return CommitSentControlVariateDelta(up, sent, 1, state);
}

}  // namespace fedtrain
