#include "aggregators/dsgd.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "core/status_macros.h"
#include "models/local_sgd.h"

namespace fedtrain {

absl::Status DsgdClient::LocalUpdate(const Payload& down, LocalContext& ctx, ClientState*,
                                     Payload* up, LocalResult* result) const {
  if (down.parts.empty()) return absl::InvalidArgumentError("down payload has no model");
  const std::vector<float>& x = down.parts[0];
  std::vector<float> g(x.size());
  FT_ASSIGN_OR_RETURN(const double loss,
                      LocalGradient(*ctx.trainer, ctx.data, ctx.sgd, *ctx.rng, x,
                                    absl::MakeSpan(g)));
  const double lr = ctx.sgd.lr;
  for (float& v : g) v = static_cast<float>(-lr * static_cast<double>(v));
  up->parts.clear();
  up->parts.push_back(std::move(g));
  up->scalars.clear();
  result->steps = 1;
  result->train_loss = loss;
  return absl::OkStatus();
}

}  // namespace fedtrain
