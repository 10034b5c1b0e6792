#include "aggregators/feddyn.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status FedDynServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  s->vectors[kH].assign(x0.size(), 0.0f);
  return absl::OkStatus();
}

absl::Status FedDynServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                  ServerState* s) {
  const size_t d = s->x.size();
  auto hi = s->vectors.find(kH);
  if (hi == s->vectors.end() || hi->second.size() != d)
    return absl::FailedPreconditionError(absl::StrCat(
        "feddyn server state needs vector ", kH, " of ", d,
        " floats (was Init run, or is the checkpoint from another algorithm?)"));
  if (updates.empty()) return absl::OkStatus();  // mean_S undefined: x and h stay
  if (info.num_clients < updates.size())
    return absl::InvalidArgumentError(
        absl::StrCat("feddyn: round ", info.round + 1, " has ", updates.size(),
                     " updates but RoundInfo.num_clients (N) is ", info.num_clients));
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, "uniform", &w));  // mean_S, docs/federated.md §1.5
  std::vector<ConstVec> deltas;
  deltas.reserve(updates.size());
  for (const ClientUpdate& u : updates) deltas.push_back(u.parts.at(0));
  mean_.resize(d);
  const std::vector<uint64_t> ids = ClientIds(updates);
  FT_RETURN_IF_ERROR(reducer_->Reduce(deltas, w, absl::MakeSpan(mean_),
                                      RoundReduceContext(info, s, "feddyn.delta", ids)));
  // h -= (alpha / N) * S * mean_S(Delta); x = x + mean_S(Delta) - h / alpha.
  const double alpha = o_.alpha;
  const double h_scale = alpha * static_cast<double>(updates.size()) /
                         static_cast<double>(info.num_clients);
  std::vector<float>& h = hi->second;
  for (size_t j = 0; j < d; ++j) {
    const double mean = mean_[j];
    const double hj = static_cast<double>(h[j]) - h_scale * mean;
    h[j] = static_cast<float>(hj);
    s->x[j] = static_cast<float>(static_cast<double>(s->x[j]) + mean - hj / alpha);
  }
  return absl::OkStatus();
}

absl::Status FedDynClient::LocalUpdate(const Payload& down, LocalContext& ctx,
                                       ClientState* state, Payload* up,
                                       LocalResult* result) const {
  if (down.parts.empty()) return absl::InvalidArgumentError("down payload has no model");
  const std::vector<float>& x = down.parts[0];
  std::vector<float>& grad_l = state->vectors[kGradL];
  if (grad_l.empty()) {
    grad_l.assign(x.size(), 0.0f);  // first participation: grad_L_i = 0
  } else if (grad_l.size() != x.size()) {
    return absl::InvalidArgumentError(absl::StrCat("client ", ctx.client, ": state ", kGradL,
                                                   " has ", grad_l.size(),
                                                   " floats; model has ", x.size()));
  }
  std::vector<float> y = x;
  const float alpha = static_cast<float>(o_.alpha);
  const std::vector<float>& gl = grad_l;
  GradientHook hook = [&x, &gl, alpha](ConstVec yk, Vec grad) {
    for (size_t j = 0; j < grad.size(); ++j) grad[j] += alpha * (yk[j] - x[j]) - gl[j];
  };
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng,
                                                    absl::MakeSpan(y), hook));
  for (size_t j = 0; j < y.size(); ++j) {
    y[j] -= x[j];  // Delta = y_K - x
    grad_l[j] = static_cast<float>(static_cast<double>(grad_l[j]) -
                                   o_.alpha * static_cast<double>(y[j]));
  }
  ReplyWith(std::move(y), r, up, result);
  return absl::OkStatus();
}

}  // namespace fedtrain
