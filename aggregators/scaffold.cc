// SCAFFOLD options I and II (docs/federated.md §2); see scaffold.h for state and payloads.
#include "aggregators/scaffold.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::Status AddControlVariateDeltas(absl::Span<const ClientUpdate> updates, size_t part,
                                     uint64_t num_clients, std::vector<float>* c,
                                     double scale) {
  if (updates.empty()) return absl::OkStatus();
  if (num_clients == 0 || num_clients < updates.size())
    return absl::InvalidArgumentError(
        absl::StrCat("control-variate update: ", updates.size(),
                     " updates but RoundInfo.num_clients (N) is ", num_clients));
  const size_t d = c->size();
  std::vector<double> sum(d, 0.0);
  for (const ClientUpdate& u : updates) {  // client-id order: the caller's order
    if (u.parts.size() <= part || u.parts[part].size() != d)
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", u.id, ": control-variate delta (up part ", part, ") missing or not ", d,
          " floats"));
    ConstVec dc = u.parts[part];
    for (size_t j = 0; j < d; ++j) sum[j] += dc[j];
  }
  const double inv_n = scale * (1.0 / static_cast<double>(num_clients));
  for (size_t j = 0; j < d; ++j)
    (*c)[j] = static_cast<float>(static_cast<double>((*c)[j]) + sum[j] * inv_n);
  return absl::OkStatus();
}

absl::Status ReduceControlVariateDeltas(absl::Span<const ClientUpdate> updates, size_t part,
                                        const RoundInfo& info, const Reducer& reducer,
                                        ServerState* s, const std::vector<uint64_t>& ids,
                                        std::vector<float>* c) {
  if (reducer.name() == "mean") return AddControlVariateDeltas(updates, part, info.num_clients, c);
  if (updates.empty()) return absl::OkStatus();
  if (info.num_clients == 0 || info.num_clients < updates.size())
    return absl::InvalidArgumentError(
        absl::StrCat("control-variate update: ", updates.size(),
                     " updates but RoundInfo.num_clients (N) is ", info.num_clients));
  const size_t d = c->size();
  std::vector<ConstVec> in;
  for (const ClientUpdate& u : updates) {
    if (u.parts.size() <= part || u.parts[part].size() != d)
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", u.id, ": control-variate delta (up part ", part, ") missing or not ", d,
          " floats"));
    in.push_back(u.parts[part]);
  }
  const std::vector<double> w(in.size(), 1.0 / static_cast<double>(in.size()));
  std::vector<float> r(d);
  FT_RETURN_IF_ERROR(reducer.Reduce(in, w, absl::MakeSpan(r), RoundReduceContext(info, s, "c", ids)));
  const double frac = static_cast<double>(updates.size()) / static_cast<double>(info.num_clients);
  for (size_t j = 0; j < d; ++j)
    (*c)[j] = static_cast<float>(static_cast<double>((*c)[j]) + frac * r[j]);
  return absl::OkStatus();
}

absl::Status CommitSentControlVariateDelta(const Payload& up, const Payload& sent, size_t part,
                                           ClientState* state) {
  if (up.parts.size() <= part || sent.parts.size() <= part ||
      up.parts[part].size() != sent.parts[part].size())
    return absl::InvalidArgumentError(absl::StrCat(
        "commit: up part ", part, " (the control-variate delta) missing or resized by the uplink"));
  auto it = state->vectors.find(kControlVariateKey);
  if (it == state->vectors.end() || it->second.size() != up.parts[part].size())
    return absl::InvalidArgumentError(
        "commit: client state 'c' missing or not the size of the control-variate delta");
  const std::vector<float>& exact = up.parts[part];
  const std::vector<float>& got = sent.parts[part];
  std::vector<float>& ci = it->second;
  for (size_t j = 0; j < ci.size(); ++j) {
    if (std::memcmp(&exact[j], &got[j], sizeof(float)) == 0) continue;  // keep c_i^+ exactly
    ci[j] = static_cast<float>(static_cast<double>(ci[j]) - exact[j] + got[j]);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<float>> LoadControlVariate(const ClientState& state, size_t d) {
  auto it = state.vectors.find(kControlVariateKey);
  if (it == state.vectors.end()) return std::vector<float>(d, 0.0f);  // c_i^0 = 0
  if (it->second.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("client state 'c' has ", it->second.size(),
                                                   " floats; model has ", d));
  return it->second;
}

absl::Status ScaffoldServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  s->vectors[kControlVariateKey].assign(x0.size(), 0.0f);
  return absl::OkStatus();
}

absl::Status ScaffoldServer::DownPayload(const ServerState& s, Payload* down) const {
  auto it = s.vectors.find(kControlVariateKey);
  FT_CHECK(it != s.vectors.end() && it->second.size() == s.x.size());
  down->parts = {s.x, it->second};
  down->scalars.clear();
  return absl::OkStatus();
}

absl::Status ScaffoldServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                    ServerState* s) {
  if (updates.empty()) return absl::OkStatus();  // no participants: x and c stay
  const size_t d = s->x.size();
  std::vector<float>& c = s->vectors[kControlVariateKey];
  FT_CHECK(c.size() == d);
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, o_.weighting, &w));
  std::vector<ConstVec> deltas;
  deltas.reserve(updates.size());
  for (const ClientUpdate& u : updates) {
    if (u.parts.size() != 2)
      return absl::InvalidArgumentError(
          absl::StrCat("client ", u.id, ": scaffold expects 2 up parts, got ", u.parts.size()));
    deltas.push_back(u.parts[0]);
  }
  const std::vector<uint64_t> ids = ClientIds(updates);
  // Validate c's inputs before touching x, so a bad update changes nothing.
  std::vector<float> c_new = c;
  FT_RETURN_IF_ERROR(ReduceControlVariateDeltas(updates, 1, info, *reducer_, s, ids, &c_new));
  mean_.resize(d);
  FT_RETURN_IF_ERROR(reducer_->Reduce(deltas, w, absl::MakeSpan(mean_),
                                      RoundReduceContext(info, s, "scaffold.delta", ids)));
  const float eta = static_cast<float>(o_.server_lr);
  for (size_t j = 0; j < d; ++j) s->x[j] += eta * mean_[j];
  c = std::move(c_new);
  return absl::OkStatus();
}

absl::Status ScaffoldClient::LocalUpdate(const Payload& down, LocalContext& ctx,
                                         ClientState* state, Payload* up,
                                         LocalResult* result) const {
  const size_t d = ctx.trainer->dim();
  if (down.parts.size() != 2 || down.parts[0].size() != d || down.parts[1].size() != d)
    return absl::InvalidArgumentError(
        absl::StrCat("scaffold: down payload must be (x, c) of ", d, " floats each"));
  const std::vector<float>& x = down.parts[0];
  const std::vector<float>& c = down.parts[1];
  FT_ASSIGN_OR_RETURN(std::vector<float> ci, LoadControlVariate(*state, d));
  std::vector<float> corr(d);  // c - c_i, fixed for the whole round
  for (size_t j = 0; j < d; ++j) corr[j] = c[j] - ci[j];
  const GradientHook hook = [&corr](ConstVec, Vec g) {
    for (size_t j = 0; j < g.size(); ++j) g[j] += corr[j];
  };
  std::vector<float> y = x;
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng,
                                                    absl::MakeSpan(y), hook));
  if (r.steps <= 0) return absl::InternalError("scaffold: local SGD ran no steps");

  std::vector<float> ci_plus(d);
  if (o_.option == ScaffoldOptions::Variate::kOptionII) {
    const double k_eta = static_cast<double>(r.steps) * ctx.sgd.lr;  // values actually used
    for (size_t j = 0; j < d; ++j)
      ci_plus[j] = static_cast<float>(static_cast<double>(ci[j]) - c[j] +
                                      (static_cast<double>(x[j]) - y[j]) / k_eta);
  } else {
    LocalSgdOptions full = ctx.sgd;
    full.batch_size = static_cast<int64_t>(std::max<size_t>(ctx.data.size(), 1));
    full.clip_norm = 0.0;
    // B >= n: the whole data set in stored order; the stream is not consumed.
    FT_RETURN_IF_ERROR(LocalGradient(*ctx.trainer, ctx.data, full, *ctx.rng, x,
                                     absl::MakeSpan(ci_plus))
                           .status());
  }

  std::vector<float> delta(d), dc(d);
  for (size_t j = 0; j < d; ++j) {
    delta[j] = y[j] - x[j];
    dc[j] = ci_plus[j] - ci[j];
  }
  up->parts.clear();
  up->parts.push_back(std::move(delta));
  up->parts.push_back(std::move(dc));
  up->scalars.clear();
  state->vectors[kControlVariateKey] = std::move(ci_plus);
  result->steps = r.steps;
  result->train_loss = r.mean_loss;
  return absl::OkStatus();
}

absl::Status ScaffoldClient::CommitSent(const Payload& up, const Payload& sent,
                                        ClientState* state) const {
  return CommitSentControlVariateDelta(up, sent, 1, state);
}

}  // namespace fedtrain
