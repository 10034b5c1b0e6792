// SCALLION and SCAFCOM (docs/federated.md §5); see scallion.h for the units and equations.
#include "aggregators/scallion.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/scaffold.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

const char* Name(const ScallionOptions& o) { return o.momentum ? "scafcom" : "scallion"; }

// The stored vector under `key` (zeros of size d when absent); InvalidArgument on a mismatch.
absl::StatusOr<std::vector<float>> LoadOrZero(const ClientState& state, const char* key,
                                              size_t d) {
  auto it = state.vectors.find(key);
  if (it == state.vectors.end()) return std::vector<float>(d, 0.0f);
  if (it->second.size() != d)
    return absl::InvalidArgumentError(absl::StrCat("client state '", key, "' has ",
                                                   it->second.size(), " floats; model has ", d));
  return it->second;
}

}  // namespace

absl::Status ScallionServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  s->vectors[kControlVariateKey].assign(x0.size(), 0.0f);
  return absl::OkStatus();
}

absl::Status ScallionServer::DownPayload(const ServerState& s, Payload* down) const {
  auto it = s.vectors.find(kControlVariateKey);
  FT_CHECK(it != s.vectors.end() && it->second.size() == s.x.size());
  down->parts = {s.x, it->second};
  down->scalars.clear();
  return absl::OkStatus();
}

absl::Status ScallionServer::CheckUpdate(const ClientUpdate& u) const {
  if (u.steps <= 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "reported K_i = ", u.steps, " local steps; the ", Name(o_), " step is K_i-weighted"));
  return absl::OkStatus();
}

absl::Status ScallionServer::Update(absl::Span<const ClientUpdate> updates,
                                    const RoundInfo& info, ServerState* s) {
  if (updates.empty()) return absl::OkStatus();  // no participants: x and C stay
  const size_t d = s->x.size();
  std::vector<float>& c = s->vectors[kControlVariateKey];
  FT_CHECK(c.size() == d);
  for (const ClientUpdate& u : updates) {
    FT_RETURN_IF_ERROR(CheckUpdate(u));
    if (u.parts.size() != 1 || u.parts[0].size() != d)
      return absl::InvalidArgumentError(absl::StrCat(
          "client ", u.id, ": ", Name(o_), " expects 1 up part of ", d, " floats"));
  }
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, o_.weighting, &w));
  // C^{r+1} = C^r + (alpha/N) sum D~_i; validated before x moves.
  std::vector<float> c_new = c;
  FT_RETURN_IF_ERROR(AddControlVariateDeltas(updates, 0, info.num_clients, &c_new, o_.alpha));
  // x -= eta_g sum_i w_i K_i (C^r + D~_i) = eta_g (Kbar C^r + sum_i w_i K_i D~_i), in double,
  // in client-id order.
  std::vector<double> acc(d, 0.0);
  double kbar = 0.0;
  for (size_t i = 0; i < updates.size(); ++i) {
    const double wk = w[i] * static_cast<double>(updates[i].steps);
    kbar += wk;
    ConstVec dt = updates[i].parts[0];
    for (size_t j = 0; j < d; ++j) acc[j] += wk * dt[j];
  }
  for (size_t j = 0; j < d; ++j)
    s->x[j] = static_cast<float>(static_cast<double>(s->x[j]) -
                                 o_.server_lr * (kbar * c[j] + acc[j]));
  c = std::move(c_new);
  return absl::OkStatus();
}

absl::Status ScallionClient::LocalUpdate(const Payload& down, LocalContext& ctx,
                                         ClientState* state, Payload* up,
                                         LocalResult* result) const {
  const size_t d = ctx.trainer->dim();
  if (down.parts.size() != 2 || down.parts[0].size() != d || down.parts[1].size() != d)
    return absl::InvalidArgumentError(
        absl::StrCat(Name(o_), ": down payload must be (x, c) of ", d, " floats each"));
  if (!(ctx.sgd.lr > 0))
    return absl::InvalidArgumentError(absl::StrCat(Name(o_), ": local lr must be > 0"));
  const std::vector<float>& x = down.parts[0];
  const std::vector<float>& c = down.parts[1];  // C^r, lr units
  FT_ASSIGN_OR_RETURN(const std::vector<float> ci, LoadOrZero(*state, kControlVariateKey, d));
  std::vector<float> corr(d);  // (C - C_i) / eta = c - c_i, gradient units, fixed this round
  for (size_t j = 0; j < d; ++j)
    corr[j] = static_cast<float>((static_cast<double>(c[j]) - ci[j]) / ctx.sgd.lr);
  const GradientHook hook = [&corr](ConstVec, Vec g) {
    for (size_t j = 0; j < g.size(); ++j) g[j] += corr[j];
  };
  std::vector<float> y = x;
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng,
                                                    absl::MakeSpan(y), hook));
  if (r.steps <= 0) return absl::InternalError(absl::StrCat(Name(o_), ": local SGD ran no steps"));
  const double k = static_cast<double>(r.steps);

  std::vector<float> delta(d);
  if (!o_.momentum) {
    for (size_t j = 0; j < d; ++j)  // D_i = (x - y)/K - C
      delta[j] = static_cast<float>((static_cast<double>(x[j]) - y[j]) / k - c[j]);
  } else {
    FT_ASSIGN_OR_RETURN(std::vector<float> v, LoadOrZero(*state, kScafcomMomentumKey, d));
    for (size_t j = 0; j < d; ++j) {
      const double u = (static_cast<double>(x[j]) - y[j]) / k - c[j] + ci[j];  // U_i
      v[j] = static_cast<float>((1.0 - o_.beta) * v[j] + o_.beta * u);
      delta[j] = static_cast<float>(static_cast<double>(v[j]) - ci[j]);  // V_i - C_i
    }
    state->vectors[kScafcomMomentumKey] = std::move(v);
  }
  // C_i moves in CommitSent, by the decoded message.
  up->parts.clear();
  up->parts.push_back(std::move(delta));
  up->scalars.clear();
  result->steps = r.steps;
  result->train_loss = r.mean_loss;
  return absl::OkStatus();
}

absl::Status ScallionClient::CommitSent(const Payload& up, const Payload& sent,
                                        ClientState* state) const {
  (void)up;
  if (sent.parts.size() != 1)
    return absl::InvalidArgumentError(
        absl::StrCat(Name(o_), ": commit expects 1 sent part, got ", sent.parts.size()));
  const std::vector<float>& dt = sent.parts[0];
  FT_ASSIGN_OR_RETURN(std::vector<float> ci, LoadOrZero(*state, kControlVariateKey, dt.size()));
  for (size_t j = 0; j < ci.size(); ++j)
    ci[j] = static_cast<float>(static_cast<double>(ci[j]) + o_.alpha * dt[j]);
  state->vectors[kControlVariateKey] = std::move(ci);
  return absl::OkStatus();
}

}  // namespace fedtrain
