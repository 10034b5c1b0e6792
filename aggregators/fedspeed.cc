// FedSpeed, docs/federated.md §4 (see fedspeed.h for the equations and sizes).
#include "aggregators/fedspeed.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "aggregators/weighted_mean.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// The reference code's guard in ε = ρ g1 / (‖g1‖₂ + 1e-7) (§4.2 step 2, §10.2).
constexpr double kPerturbationEps = 1e-7;

double Norm2(ConstVec v) {
  double sq = 0.0;
  for (float x : v) sq += static_cast<double>(x) * x;
  return std::sqrt(sq);
}

}  // namespace

absl::Status FedSpeedServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  // Σ_j H_j = 0: every client starts with ĝ_j = 0.
  if (o_.mode == FedSpeedMode::kCode) s->vectors[kFedSpeedHSumKey].assign(x0.size(), 0.0f);
  return absl::OkStatus();
}

absl::Status FedSpeedServer::Update(absl::Span<const ClientUpdate> updates,
                                    const RoundInfo& info, ServerState* s) {
  const size_t d = s->x.size();
  // No participant: mean_P is undefined and no client changed its ĝ_i, so nothing moves.
  if (updates.empty()) return absl::OkStatus();
  std::vector<ConstVec> parts;
  parts.reserve(updates.size());
  for (const ClientUpdate& u : updates) {
    if (u.parts.size() != 1)
      return absl::InvalidArgumentError(absl::StrCat("fedspeed: client ", u.id, " sent ",
                                                     u.parts.size(), " up parts; expected 1"));
    if (u.parts[0].size() != d)
      return absl::InvalidArgumentError(absl::StrCat("fedspeed: client ", u.id, " sent ",
                                                     u.parts[0].size(), " floats; model has ", d));
    parts.push_back(u.parts[0]);
  }
  std::vector<float>* h_sum = nullptr;
  if (o_.mode == FedSpeedMode::kCode) {
    const uint64_t n = info.num_clients;
    if (n < updates.size())
      return absl::InvalidArgumentError(
          absl::StrCat("fedspeed (code mode) needs the number of clients N: RoundInfo has N = ", n,
                       " but ", updates.size(), " updates arrived"));
    for (const ClientUpdate& u : updates)
      if (u.id >= n)
        return absl::InvalidArgumentError(
            absl::StrCat("fedspeed: client id ", u.id, " is not below N = ", n));
    auto it = s->vectors.find(kFedSpeedHSumKey);
    if (it == s->vectors.end() || it->second.size() != d)
      return absl::InvalidArgumentError(absl::StrCat(
          "fedspeed (code mode): server state ", kFedSpeedHSumKey, " is missing or has ",
          it == s->vectors.end() ? 0 : it->second.size(), " floats; model has ", d));
    h_sum = &it->second;
  }

  // mean_P: uniform weights (docs/federated.md §0 mean_S), through the configured reducer.
  const std::vector<double> w(updates.size(), 1.0 / static_cast<double>(updates.size()));
  mean_.resize(d);
  const std::vector<uint64_t> ids = ClientIds(updates);
  FT_RETURN_IF_ERROR(reducer_->Reduce(parts, w, absl::MakeSpan(mean_),
                                      RoundReduceContext(info, s, "fedspeed.x", ids)));

  if (h_sum == nullptr) {  // paper: x^{t+1} = mean_P(x̂_i) = x^t + mean_P(x̂_i − x^t)
    for (size_t j = 0; j < d; ++j)
      s->x[j] = static_cast<float>(static_cast<double>(s->x[j]) + mean_[j]);
    return absl::OkStatus();
  }
  // code: H_i ← H_i + Δ_i for every participant, so Σ_j H_j grows by Σ_P Δ_i. This is a plain
  // sum over all received updates, not the reducer's output: it tracks what the clients stored,
  // whatever a robust reducer makes of the model step. Double accumulation in client-id order.
  acc_.assign(h_sum->begin(), h_sum->end());
  if (reducer_->name() == "mean") {
    const std::vector<double> ones(updates.size(), 1.0);
    FT_RETURN_IF_ERROR(WeightedAccumulate(parts, ones, absl::MakeSpan(acc_), info.pool));
  } else {
    // A robust reducer: one Byzantine Delta_i would otherwise enter sum_j H_j (and so every
    // later model) unfiltered. Its estimate of the sum is |P| times the reduced Delta.
    const double np = static_cast<double>(updates.size());
    for (size_t j = 0; j < d; ++j) acc_[j] += np * static_cast<double>(mean_[j]);
  }
  const double inv_n = 1.0 / static_cast<double>(info.num_clients);
  for (size_t j = 0; j < d; ++j) {
    (*h_sum)[j] = static_cast<float>(acc_[j]);
    // x^{t+1} = mean_P(y_K) + (1/N) Σ_j H_j, with mean_P(y_K) = x^t + mean_P(Δ_i); computed from
    // the stored (float) sum so x is a function of the checkpointed state.
    s->x[j] = static_cast<float>(static_cast<double>(s->x[j]) + mean_[j] +
                                 static_cast<double>((*h_sum)[j]) * inv_n);
  }
  return absl::OkStatus();
}

absl::Status FedSpeedClient::LocalUpdate(const Payload& down, LocalContext& ctx,
                                         ClientState* state, Payload* up,
                                         LocalResult* result) const {
  if (down.parts.empty()) return absl::InvalidArgumentError("down payload has no model");
  if (ctx.trainer == nullptr || ctx.rng == nullptr)
    return absl::InvalidArgumentError("fedspeed: local context has no trainer or rng");
  const std::vector<float>& x = down.parts[0];
  const size_t d = x.size();
  std::vector<float>& ghat = state->vectors[kFedSpeedGhatKey];
  if (ghat.empty()) ghat.assign(d, 0.0f);  // first participation: ĝ_i = 0
  if (ghat.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("fedspeed: client ", ctx.client, " state ",
                                                   kFedSpeedGhatKey, " has ", ghat.size(),
                                                   " floats; model has ", d));

  Trainer& trainer = *ctx.trainer;
  const float lamb = static_cast<float>(o_.prox_coef);
  const double rho = o_.rho;
  const bool two_passes = o_.rho > 0 && o_.alpha > 0;
  const float alpha = static_cast<float>(o_.alpha);
  const float one_minus_alpha = static_cast<float>(1.0 - o_.alpha);
  const double clip = ctx.sgd.clip_norm;
  // Clipping is done here, on the part §4.2 step 4 clips; RunLocalSgd must not clip again.
  // Weight decay stays with RunLocalSgd, which adds it after this function (outside the clip).
  LocalSgdOptions sgd = ctx.sgd;
  sgd.clip_norm = 0.0;

  std::vector<float> g1(two_passes ? d : 0), y_pert(two_passes ? d : 0), g2(two_passes ? d : 0);
  std::vector<float> corr(clip > 0 ? d : 0);  // g̃ − ĝ_i − lamb x^t, when clipping
  const GradientFn gradient = [&](ConstVec y, const Batch& b, Vec grad) -> absl::StatusOr<double> {
    // grad = g̃ first (the loss is the one at y, the iterate).
    FT_ASSIGN_OR_RETURN(const double loss, trainer.Gradient(y, b, grad));
    if (two_passes) {
      // ρ = 0 gives ỹ = y, g2 = g1; α = 0 ignores g2: both take the single pass above, which
      // is exactly g̃ = g1 (no (1−α) g1 + α g1 rounding), so U23 holds bit for bit.
      for (size_t j = 0; j < d; ++j) g1[j] = grad[j];
      const double scale = o_.normalize_perturbation ? rho / (Norm2(g1) + kPerturbationEps) : rho;
      for (size_t j = 0; j < d; ++j)
        y_pert[j] = y[j] + static_cast<float>(scale * static_cast<double>(g1[j]));
      FT_RETURN_IF_ERROR(trainer.Gradient(y_pert, b, absl::MakeSpan(g2)).status());
      if (o_.alpha == 1.0) {
        for (size_t j = 0; j < d; ++j) grad[j] = g2[j];  // the reference code's α = 1
      } else {
        for (size_t j = 0; j < d; ++j) grad[j] = one_minus_alpha * g1[j] + alpha * g2[j];
      }
    }
    if (clip > 0) {
      // §4.2 step 4: G = g2 + lamb (H_i − x^t) = g̃ − ĝ_i − lamb x^t is clipped to `clip`
      // (exact factor clip/‖G‖, as RunLocalSgd's clipping); lamb y is added after the clip.
      for (size_t j = 0; j < d; ++j) corr[j] = grad[j] - ghat[j] - lamb * x[j];
      const double norm = Norm2(corr);
      if (norm > clip) {
        const float s = static_cast<float>(clip / norm);
        for (size_t j = 0; j < d; ++j) grad[j] = s * corr[j] + lamb * y[j];
        return loss;
      }
    }
    // Unclipped: g̃ − ĝ_i + lamb (y − x^t), with y − x^t formed first (no cancellation of
    // lamb y against lamb x^t; near convergence y ≈ x^t).
    for (size_t j = 0; j < d; ++j) grad[j] = grad[j] - ghat[j] + lamb * (y[j] - x[j]);
    return loss;
  };

  std::vector<float> y = x;
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(trainer, ctx.data, sgd, *ctx.rng,
                                                    absl::MakeSpan(y), nullptr, gradient));
  // Δ_i = y_K − x^t; ĝ_i ← ĝ_i − lamb Δ_i.
  for (size_t j = 0; j < d; ++j) {
    y[j] -= x[j];
    ghat[j] -= lamb * y[j];
  }
  if (o_.mode == FedSpeedMode::kPaper) {
    // x̂_i − x^t = Δ_i − λ ĝ_i with the updated ĝ_i (λ = 1/prox_coef), in double.
    for (size_t j = 0; j < d; ++j)
      y[j] = static_cast<float>(static_cast<double>(y[j]) -
                                static_cast<double>(ghat[j]) / o_.prox_coef);
  }
  ReplyWith(std::move(y), r, up, result);
  return absl::OkStatus();
}

}  // namespace fedtrain
