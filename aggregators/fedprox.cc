#include "aggregators/fedprox.h"

#include <utility>
#include <vector>

#include "core/status_macros.h"

namespace fedtrain {

absl::Status FedProxClient::LocalUpdate(const Payload& down, LocalContext& ctx, ClientState*,
                                        Payload* up, LocalResult* result) const {
  if (down.parts.empty()) return absl::InvalidArgumentError("down payload has no model");
  const std::vector<float>& x = down.parts[0];
  std::vector<float> y = x;
  GradientHook hook = nullptr;  // mu = 0: plain local SGD, identical to FedAvg's client
  if (o_.mu != 0.0) {
    const float mu = static_cast<float>(o_.mu);
    hook = [&x, mu](ConstVec yk, Vec grad) {
      for (size_t j = 0; j < grad.size(); ++j) grad[j] += mu * (yk[j] - x[j]);
    };
  }
  FT_ASSIGN_OR_RETURN(LocalSgdResult r, RunLocalSgd(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng,
                                                    absl::MakeSpan(y), hook));
  for (size_t j = 0; j < y.size(); ++j) y[j] -= x[j];  // Delta = y_K - x
  ReplyWith(std::move(y), r, up, result);
  return absl::OkStatus();
}

}  // namespace fedtrain
