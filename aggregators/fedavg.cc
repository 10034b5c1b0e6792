#include "aggregators/fedavg.h"

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status FedAvgServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  if (o_.server_momentum) s->vectors[kServerMomentumKey].assign(x0.size(), 0.0f);
  return absl::OkStatus();
}

absl::Status FedAvgServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                  ServerState* s) {
  const size_t d = s->x.size();
  if (updates.empty()) {
    // No update arrived: the model stays; FedAvgM's momentum is not advanced either, since
    // Dbar is undefined (not zero) without participants.
    return absl::OkStatus();
  }
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, o_.weighting, &w));
  std::vector<ConstVec> deltas;
  deltas.reserve(updates.size());
  for (const ClientUpdate& u : updates) deltas.push_back(u.parts.at(0));
  mean_.resize(d);
  const std::vector<uint64_t> ids = ClientIds(updates);
  FT_RETURN_IF_ERROR(reducer_->Reduce(deltas, w, absl::MakeSpan(mean_),
                                      RoundReduceContext(info, s, "fedavg.delta", ids)));
  const float eta = static_cast<float>(o_.server_lr);
  if (!o_.server_momentum) {
    for (size_t j = 0; j < d; ++j) s->x[j] += eta * mean_[j];
  } else {
    std::vector<float>& m = s->vectors[kServerMomentumKey];
    FT_CHECK(m.size() == d);
    const float beta = static_cast<float>(o_.beta);
    for (size_t j = 0; j < d; ++j) {
      m[j] = beta * m[j] + mean_[j];
      s->x[j] += eta * (o_.nesterov ? beta * m[j] + mean_[j] : m[j]);
    }
  }
  return absl::OkStatus();
}

absl::Status FedAvgClient::LocalUpdate(const Payload& down, LocalContext& ctx, ClientState*,
                                       Payload* up, LocalResult* result) const {
  if (down.parts.empty()) return absl::InvalidArgumentError("down payload has no model");
  const std::vector<float>& x = down.parts[0];
  std::vector<float> y = x;
  FT_ASSIGN_OR_RETURN(LocalSgdResult r,
                      RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng, absl::MakeSpan(y)));
  for (size_t j = 0; j < y.size(); ++j) y[j] -= x[j];  // Delta = y_K - x
  ReplyWith(std::move(y), r, up, result);
  return absl::OkStatus();
}

}  // namespace fedtrain
