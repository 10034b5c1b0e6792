#include "aggregators/dsgd.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/fedavg.h"
#include "aggregators/params.h"
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

namespace {

class DsgdFactory final : public AlgorithmFactory {
 public:
  std::string name() const override { return "dsgd"; }
  int state_version() const override { return 1; }
  absl::Status Validate(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(CheckServerLr(c));
    FT_RETURN_IF_ERROR(ResolveWeighting(c, "samples").status());
    FT_RETURN_IF_ERROR(MakeReducer(c.reducer()).status());
    return ParamReader(c.params(), name()).Finish();  // typed fields only
  }
  absl::StatusOr<std::unique_ptr<ServerAlgorithm>> MakeServer(const Cfg& c) const override {
    FT_RETURN_IF_ERROR(Validate(c));
    FedAvgOptions o;
    o.server_lr = c.server_lr();
    FT_ASSIGN_OR_RETURN(o.weighting, ResolveWeighting(c, "samples"));
    FT_ASSIGN_OR_RETURN(std::unique_ptr<Reducer> reducer, MakeReducer(c.reducer()));
    return std::unique_ptr<ServerAlgorithm>(new FedAvgServer(o, std::move(reducer)));
  }
  absl::StatusOr<std::unique_ptr<ClientAlgorithm>> MakeClient(const Cfg&) const override {
    return std::unique_ptr<ClientAlgorithm>(new DsgdClient());
  }
};

}  // namespace

std::unique_ptr<AlgorithmFactory> MakeDsgdFactory() { return std::make_unique<DsgdFactory>(); }

}  // namespace fedtrain
