// Local SGD (docs/federated.md §0, §7.4, §7.6): minibatch order from the caller's
// RngStream, then per step: loss gradient -> global-norm clipping -> + weight decay ->
// algorithm hook -> heavy-ball momentum -> y -= lr * direction. All vector arithmetic is in
// float, element by element, so a step is reproducible bit for bit from (w, batch, options).
#include "models/local_sgd.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

absl::Status ValidateOptions(const LocalSgdOptions& o) {
  // Written as !(x > 0) so that NaN is refused too.
  if (!(o.lr > 0)) {
    return absl::InvalidArgumentError(absl::StrCat("local.lr must be > 0, got ", o.lr));
  }
  if (o.batch_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("local.batch_size must be > 0, got ", o.batch_size));
  }
  if (o.steps < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("local.steps must be >= 0 (0 = epoch mode), got ", o.steps));
  }
  if (o.steps == 0 && o.epochs <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "one of local.steps or local.epochs must be > 0, got steps = ", o.steps,
        ", epochs = ", o.epochs));
  }
  if (!(o.momentum >= 0 && o.momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local.momentum must be in [0, 1), got ", o.momentum));
  }
  if (!(o.weight_decay >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local.weight_decay must be >= 0, got ", o.weight_decay));
  }
  if (!(o.clip_norm >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("local.clip_norm must be >= 0 (0 = off), got ", o.clip_norm));
  }
  return absl::OkStatus();
}

// Scales `g` to L2 norm `clip` when its norm exceeds it. The norm is accumulated in double
// so it does not depend on d's size for its accuracy. Exactly clip / norm (PyTorch's
// clip_grad_norm_ adds 1e-6 to the norm; the difference is a relative 1e-6 / clip).
void ClipToNorm(double clip, Vec g) {
  double sq = 0.0;
  for (float v : g) sq += static_cast<double>(v) * v;
  const double norm = std::sqrt(sq);
  if (norm > clip) {
    const float scale = static_cast<float>(clip / norm);
    for (float& v : g) v *= scale;
  }
}

// Positions 0..n-1 of the view in a fresh random order. Restarting from the identity (not
// from the previous order) makes each permutation a function of the stream position only.
void Reshuffle(RngStream& rng, std::vector<uint32_t>* perm) {
  std::iota(perm->begin(), perm->end(), 0u);
  rng.Shuffle(absl::MakeSpan(*perm));
}

}  // namespace

absl::StatusOr<LocalSgdResult> RunLocalSgd(Trainer& trainer, const DataView& data,
                                           const LocalSgdOptions& opts, RngStream& rng, Vec w,
                                           const GradientHook& hook, const GradientFn& gradient) {
  FT_RETURN_IF_ERROR(ValidateOptions(opts));
  if (data.data == nullptr) {
    return absl::InvalidArgumentError("local data: the view has no data set");
  }
  const size_t n = data.size();
  if (n == 0) return absl::InvalidArgumentError("local data is empty: no samples to train on");
  const size_t d = trainer.dim();
  if (w.size() != d) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights have ", w.size(), " floats; model has ", d));
  }

  const size_t batch = static_cast<size_t>(opts.batch_size);
  const bool step_mode = opts.steps > 0;
  const size_t batches_per_epoch = (n + batch - 1) / batch;
  const int64_t total_steps =
      step_mode ? opts.steps : opts.epochs * static_cast<int64_t>(batches_per_epoch);

  const float lr = static_cast<float>(opts.lr);
  const float momentum = static_cast<float>(opts.momentum);
  const float weight_decay = static_cast<float>(opts.weight_decay);
  std::vector<float> grad(d);
  std::vector<float> velocity(opts.momentum > 0 ? d : 0, 0.0f);  // reset every call (round)
  std::vector<uint32_t> perm(n);
  std::vector<uint32_t> indices(std::min(batch, n));

  LocalSgdResult result;
  double loss_sum = 0.0;
  size_t pos = n;  // position in perm of the next batch; n = "reshuffle before use"
  for (int64_t k = 0; k < total_steps; ++k) {
    // Choose this step's batch: positions [pos, pos + len) of the permutation.
    size_t len;
    if (step_mode) {
      len = std::min(batch, n);
      if (n - pos < len) {
        Reshuffle(rng, &perm);
        pos = 0;
      }
    } else {
      if (pos == n) {  // new epoch
        Reshuffle(rng, &perm);
        pos = 0;
      }
      len = std::min(batch, n - pos);  // the last batch of an epoch may be smaller
    }
    for (size_t i = 0; i < len; ++i) indices[i] = data.index(perm[pos + i]);
    pos += len;

    const Batch b{data.data, absl::MakeConstSpan(indices.data(), len)};
    FT_ASSIGN_OR_RETURN(const double loss,
                        gradient ? gradient(ConstVec(w.data(), d), b, absl::MakeSpan(grad))
                                 : trainer.Gradient(w, b, absl::MakeSpan(grad)));
    loss_sum += loss;
    result.samples_seen += static_cast<int64_t>(len);

    // §7.6: clip the loss gradient, then add weight decay (outside the clip).
    if (opts.clip_norm > 0) ClipToNorm(opts.clip_norm, absl::MakeSpan(grad));
    if (opts.weight_decay > 0) {
      for (size_t j = 0; j < d; ++j) grad[j] += weight_decay * w[j];
    }
    if (hook) hook(ConstVec(w.data(), d), absl::MakeSpan(grad));
    if (opts.momentum > 0) {
      for (size_t j = 0; j < d; ++j) {
        velocity[j] = momentum * velocity[j] + grad[j];
        w[j] -= lr * velocity[j];
      }
    } else {
      for (size_t j = 0; j < d; ++j) w[j] -= lr * grad[j];
    }
    ++result.steps;
  }
  result.mean_loss = loss_sum / static_cast<double>(result.steps);
  return result;
}

absl::StatusOr<double> LocalGradient(Trainer& trainer, const DataView& data,
                                     const LocalSgdOptions& opts, RngStream& rng, ConstVec w,
                                     Vec grad) {
  if (opts.batch_size <= 0)
    return absl::InvalidArgumentError(
        absl::StrCat("local.batch_size must be > 0, got ", opts.batch_size));
  if (data.data == nullptr) return absl::InvalidArgumentError("local data: the view has no data set");
  const size_t n = data.size();
  if (n == 0) return absl::InvalidArgumentError("local data is empty: no samples to train on");
  const size_t d = trainer.dim();
  if (w.size() != d || grad.size() != d)
    return absl::InvalidArgumentError(
        absl::StrCat("weights have ", w.size(), " floats; model has ", d));
  const size_t len = std::min(static_cast<size_t>(opts.batch_size), n);
  std::vector<uint32_t> indices(len);
  if (len == n) {
    for (size_t i = 0; i < n; ++i) indices[i] = data.index(i);
  } else {
    std::vector<uint32_t> perm(n);
    Reshuffle(rng, &perm);
    for (size_t i = 0; i < len; ++i) indices[i] = data.index(perm[i]);
  }
  const Batch b{data.data, absl::MakeConstSpan(indices)};
  FT_ASSIGN_OR_RETURN(const double loss, trainer.Gradient(w, b, grad));
  if (opts.clip_norm > 0) ClipToNorm(opts.clip_norm, grad);
  if (opts.weight_decay > 0) {
    const float wd = static_cast<float>(opts.weight_decay);
    for (size_t j = 0; j < d; ++j) grad[j] += wd * w[j];
  }
  return loss;
}

}  // namespace fedtrain
