// FedOpt server optimisers FedAdagrad, FedAdam and FedYogi, docs/federated.md §1.4.
//
// State and sizes (d = model dimension): server x, m, v (3d; m and v are ServerState.vectors
//   "fedopt.m" and "fedopt.v"); clients stateless (FedAvgClient: plain local SGD);
//   down x (d); up Delta_i (d) + n_i. Wire: 32 bits per coordinate each way (identity codec).
// Server, once per round from the received clients S_r (all arithmetic in double, state
//   stored as float):
//   Dbar = sum_i w_i Delta_i                      (the Reducer; weights default "uniform", the
//                                                  paper's algorithm box, §1.4 [A])
//   m    = beta1 m + (1 - beta1) Dbar
//   v    = v + Dbar^2                              FedAdagrad
//   v    = beta2 v + (1 - beta2) Dbar^2            FedAdam
//   v    = v - (1 - beta2) Dbar^2 sign(v - Dbar^2) FedYogi
//   x    = x + eta m / (sqrt(v) + tau)             no bias correction
// with m^{-1} = 0 and v^{-1} = tau^2 (paper) or 0 (v_init "zero", FL-Simulator's FedAdam).
// eta is algorithm.server_lr. Its proto default 1.0 is the FedAvg convention, not a good
// FedOpt step: the paper tunes eta on a log10 grid starting at 1e-2 — set it explicitly.
// A round in which no update arrived leaves x, m and v unchanged (Dbar is undefined).
//
// Not thread-safe (the Coordinator's round loop owns the server half).
#ifndef FEDTRAIN_AGGREGATORS_FEDOPT_H_
#define FEDTRAIN_AGGREGATORS_FEDOPT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aggregators/algorithm.h"
#include "aggregators/reducer.h"
#include "aggregators/registry.h"

namespace fedtrain {

enum class FedOptVariant { kAdagrad, kAdam, kYogi };

struct FedOptOptions {
  FedOptVariant variant = FedOptVariant::kAdam;
  double server_lr = 1e-2;            // eta (the paper's server learning rate)
  std::string weighting = "uniform";  // "uniform" | "samples"
  double beta1 = 0.9;                 // [0, 1)
  double beta2 = 0.99;                // [0, 1); unused by FedAdagrad
  double tau = 1e-3;                  // > 0, adaptivity
  bool v_init_zero = false;           // v^{-1} = 0 instead of tau^2
};

// One coordinate of the server step, in double: advances *m and *v from the round's mean
// delta `dbar` and returns the amount to add to x (eta m / (sqrt(v) + tau)). This is the kernel
// FedOptServer::Update runs, exposed so its values can be checked to double precision.
double FedOptCoordinateStep(const FedOptOptions& o, double dbar, double* m, double* v);

// The initial v (v^{-1}): tau^2, or 0 with v_init_zero.
inline double FedOptInitialV(const FedOptOptions& o) { return o.v_init_zero ? 0.0 : o.tau * o.tau; }

class FedOptServer final : public ServerAlgorithm {
 public:
  explicit FedOptServer(FedOptOptions o,
                        std::unique_ptr<Reducer> reducer = std::make_unique<MeanReducer>())
      : o_(std::move(o)), reducer_(std::move(reducer)) {}
  absl::Status Init(ConstVec x0, ServerState* s) override;
  absl::Status Update(absl::Span<const ClientUpdate> updates, const RoundInfo& info,
                      ServerState* s) override;

  static constexpr const char* kFirstMoment = "fedopt.m";
  static constexpr const char* kSecondMoment = "fedopt.v";

 private:
  FedOptOptions o_;
  std::unique_ptr<Reducer> reducer_;
  std::vector<float> mean_;  // scratch: the round's Dbar
};

// The "fedadagrad", "fedadam" and "fedyogi" registry entries (fedopt_factory.cc).
std::unique_ptr<AlgorithmFactory> NewFedOptFactory(FedOptVariant variant);

}  // namespace fedtrain

#endif  // FEDTRAIN_AGGREGATORS_FEDOPT_H_
