#include "aggregators/fedopt.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {

double FedOptCoordinateStep(const FedOptOptions& o, double dbar, double* m, double* v) {
  const double d2 = dbar * dbar;
  *m = o.beta1 * *m + (1.0 - o.beta1) * dbar;
  switch (o.variant) {
    case FedOptVariant::kAdagrad:
      *v = *v + d2;
      break;
    case FedOptVariant::kAdam:
      *v = o.beta2 * *v + (1.0 - o.beta2) * d2;
      break;
    case FedOptVariant::kYogi: {
      const double diff = *v - d2;
      const double sign = diff > 0 ? 1.0 : (diff < 0 ? -1.0 : 0.0);
      *v = *v - (1.0 - o.beta2) * d2 * sign;
      break;
    }
  }
  return o.server_lr * *m / (std::sqrt(*v) + o.tau);
}

absl::Status FedOptServer::Init(ConstVec x0, ServerState* s) {
  s->x.assign(x0.begin(), x0.end());
  s->vectors.clear();
  s->vectors[kFirstMoment].assign(x0.size(), 0.0f);
  s->vectors[kSecondMoment].assign(x0.size(), static_cast<float>(FedOptInitialV(o_)));
  return absl::OkStatus();
}

absl::Status FedOptServer::Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                                  ServerState* s) {
  const size_t d = s->x.size();
  auto mi = s->vectors.find(kFirstMoment);
  auto vi = s->vectors.find(kSecondMoment);
  if (mi == s->vectors.end() || vi == s->vectors.end() || mi->second.size() != d ||
      vi->second.size() != d)
    return absl::FailedPreconditionError(
        absl::StrCat("fedopt server state needs vectors ", kFirstMoment, " and ", kSecondMoment,
                     " of ", d, " floats (was Init run, or is the checkpoint from another "
                     "algorithm?)"));
  if (updates.empty()) return absl::OkStatus();  // no Dbar: x, m, v stay
  std::vector<double> w;
  FT_RETURN_IF_ERROR(AggregationWeights(updates, o_.weighting, &w));
  std::vector<ConstVec> deltas;
  deltas.reserve(updates.size());
  for (const ClientUpdate& u : updates) deltas.push_back(u.parts.at(0));
  mean_.resize(d);
  const std::vector<uint64_t> ids = ClientIds(updates);
  FT_RETURN_IF_ERROR(reducer_->Reduce(deltas, w, absl::MakeSpan(mean_),
                                      RoundReduceContext(info, s, "fedopt.delta", ids)));
  std::vector<float>& m = mi->second;
  std::vector<float>& v = vi->second;
  for (size_t j = 0; j < d; ++j) {
    double mj = m[j], vj = v[j];
    const double step = FedOptCoordinateStep(o_, mean_[j], &mj, &vj);
    m[j] = static_cast<float>(mj);
    v[j] = static_cast<float>(vj);
    s->x[j] = static_cast<float>(static_cast<double>(s->x[j]) + step);
  }
  return absl::OkStatus();
}

}  // namespace fedtrain
