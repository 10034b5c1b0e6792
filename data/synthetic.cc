// Synthetic(alpha, beta) generator, docs/federated.md §7.8 (FedProx's data/synthetic_*).
//
// Every draw for device k comes from its own stream RngStream::For(seed, 0, k,
// kSyntheticData), in this order: size, then (non-IID only) u_k, B_k, v_k, W_k, b_k, then the
// samples' noise, then the train/test shuffle. Device k's data therefore depend only on
// (seed, k, options) and not on the order in which devices are generated, which is what lets
// SyntheticPopulation generate a device on demand with the very samples GenerateSynthetic
// pools (GenerateSynthetic is written on top of it). The IID variant's
// shared teacher W, b is drawn from the separate stream with client = num_devices, which no
// device uses.
#include "data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace {

// §7.8 step 1: n_k = floor(LogNormal(mean 4, sigma 2)) + 50.
constexpr double kLogSizeMean = 4.0;
constexpr double kLogSizeSigma = 2.0;
constexpr uint64_t kMinDeviceSize = 50;
// §7.8 step 6: the first 90% of a device's shuffled samples train, the rest test.
constexpr uint64_t kTrainNumerator = 9;
constexpr uint64_t kTrainDenominator = 10;

absl::Status Validate(const SyntheticOptions& o) {
  if (o.num_devices <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SyntheticOptions.num_devices must be > 0, got ", o.num_devices));
  }
  if (o.dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SyntheticOptions.dim must be > 0, got ", o.dim));
  }
  if (o.classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("SyntheticOptions.classes must be >= 2, got ", o.classes));
  }
  // Written as !(x >= 0) so that NaN is refused too.
  if (!(o.alpha >= 0) || !std::isfinite(o.alpha)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SyntheticOptions.alpha must be a finite standard deviation >= 0, got ", o.alpha));
  }
  if (!(o.beta >= 0) || !std::isfinite(o.beta)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SyntheticOptions.beta must be a finite standard deviation >= 0, got ", o.beta));
  }
  return absl::OkStatus();
}

// The softmax-regression teacher of one device: W is dim x classes, row-major.
struct Teacher {
  std::vector<double> w;
  std::vector<double> b;
};

Teacher DrawTeacher(RngStream& rng, int dim, int classes, double mean) {
  Teacher t;
  t.w.resize(static_cast<size_t>(dim) * classes);
  t.b.resize(classes);
  for (double& x : t.w) x = rng.Normal(mean, 1.0);
  for (double& x : t.b) x = rng.Normal(mean, 1.0);
  return t;
}

// §7.8 step 5: y = argmax_c (x^T W + b)_c; ties go to the lowest class. Evaluated on the
// float features we store, so the label is exactly the teacher's answer for the sample a
// model will see. Each logit is summed b_c, then j = 0, 1, ... in order (the loops run
// j-outer so W is read row by row; the order of each sum is unchanged). `logits` has
// `classes` entries of scratch.
int32_t Label(const float* x, const double* w, const double* b, int dim, int classes,
              double* logits) {
  for (int c = 0; c < classes; ++c) logits[c] = b[c];
  for (int j = 0; j < dim; ++j) {
    const double xj = static_cast<double>(x[j]);
    const double* wj = w + static_cast<size_t>(j) * classes;
    for (int c = 0; c < classes; ++c) logits[c] += xj * wj[c];
  }
  int32_t best = 0;
  double best_logit = -std::numeric_limits<double>::infinity();
  for (int c = 0; c < classes; ++c) {
    if (logits[c] > best_logit) {
      best_logit = logits[c];
      best = c;
    }
  }
  return best;
}

// §7.8 step 1: n_k = floor(LogNormal(mean 4, sigma 2)) + 50, the first draw of the stream.
uint64_t DrawSize(RngStream& rng) {
  const double draw = std::floor(std::exp(kLogSizeMean + kLogSizeSigma * rng.Normal()));
  // Box-Muller normals are below 8.6, so draw < e^21.2 < 2^31: the cast is exact.
  return static_cast<uint64_t>(draw) + kMinDeviceSize;
}

void ShapeLike(Dataset* d, int dim, int classes) {
  d->num_features = static_cast<size_t>(dim);
  d->num_classes = classes;
}

}  // namespace

absl::StatusOr<SyntheticPopulation> SyntheticPopulation::Create(const SyntheticOptions& opts) {
  FT_RETURN_IF_ERROR(Validate(opts));
  SyntheticPopulation p;
  p.opts_ = opts;
  // §7.8 step 3: Sigma = diag(j^-1.2), j = 1..dim; x_j = v_j + sqrt(Sigma_jj) * z.
  p.stddev_.resize(opts.dim);
  for (int j = 0; j < opts.dim; ++j) p.stddev_[j] = std::pow(static_cast<double>(j + 1), -0.6);
  // §7.8 IID variant: one teacher for all devices, from a stream no device uses.
  if (opts.iid) {
    RngStream rng = RngStream::For(opts.seed, 0, static_cast<uint64_t>(opts.num_devices),
                                   Purpose::kSyntheticData);
    Teacher shared = DrawTeacher(rng, opts.dim, opts.classes, 0.0);
    p.shared_w_ = std::move(shared.w);
    p.shared_b_ = std::move(shared.b);
  }
  return p;
}

uint64_t SyntheticPopulation::DeviceSize(uint64_t k) const {
  RngStream rng = RngStream::For(opts_.seed, 0, k, Purpose::kSyntheticData);
  return DrawSize(rng);
}

uint64_t SyntheticPopulation::TrainSize(uint64_t n) {
  return n * kTrainNumerator / kTrainDenominator;
}

void SyntheticPopulation::GenerateDevice(uint64_t k, SyntheticDevice* out,
                                         bool with_test) const {
  const int dim = opts_.dim;
  const int classes = opts_.classes;
  ShapeLike(&out->train, dim, classes);
  ShapeLike(&out->test, dim, classes);
  // The draw order is part of the data: size, then (non-IID only) u_k, B_k, v_k, W_k, b_k,
  // then the samples' noise, then the train/test shuffle.
  RngStream rng = RngStream::For(opts_.seed, 0, k, Purpose::kSyntheticData);
  const uint64_t n = DrawSize(rng);
  std::vector<double> v(dim, 0.0);  // v_k = 0 in the IID variant
  Teacher own;
  if (!opts_.iid) {
    // §7.8 step 2: alpha and beta are standard deviations ([A], ambiguity register 8).
    const double u = rng.Normal(0.0, opts_.alpha);
    const double big_b = rng.Normal(0.0, opts_.beta);
    for (double& vj : v) vj = rng.Normal(big_b, 1.0);
    own = DrawTeacher(rng, dim, classes, u);  // step 4: W_k and b_k both ~ N(u_k, 1)
  }
  const double* w = opts_.iid ? shared_w_.data() : own.w.data();
  const double* b = opts_.iid ? shared_b_.data() : own.b.data();

  std::vector<float>& x = out->scratch_x;
  std::vector<int32_t>& y = out->scratch_y;
  x.resize(n * dim);
  y.resize(n);
  std::vector<double> logits(classes);
  for (uint64_t i = 0; i < n; ++i) {
    float* xi = x.data() + i * dim;
    for (int j = 0; j < dim; ++j) {
      xi[j] = static_cast<float>(v[j] + stddev_[j] * rng.Normal());
    }
    y[i] = Label(xi, w, b, dim, classes, logits.data());
  }

  // §7.8 step 6. The samples are i.i.d. within a device, so the shuffle changes no
  // distribution; it is kept so the split follows the reference procedure draw for draw.
  std::vector<uint32_t>& order = out->scratch_order;
  order.resize(n);
  std::iota(order.begin(), order.end(), 0u);
  rng.Shuffle(absl::MakeSpan(order));
  const uint64_t n_train = TrainSize(n);
  auto fill = [&](Dataset* d, uint64_t from, uint64_t to) {
    d->features.resize((to - from) * dim);
    d->labels.resize(to - from);
    for (uint64_t i = from; i < to; ++i) {
      const float* src = x.data() + static_cast<size_t>(order[i]) * dim;
      std::copy(src, src + dim, d->features.data() + (i - from) * dim);
      d->labels[i - from] = y[order[i]];
    }
  };
  fill(&out->train, 0, n_train);
  fill(&out->test, with_test ? n_train : n, n);
  // One heavy-tailed device (sigma = 2: about e^13 samples turns up among a million devices)
  // must not pin its scratch for the rest of the run.
  constexpr size_t kKeepFloats = size_t{16} << 20;
  if (x.capacity() > kKeepFloats) {
    std::vector<float>().swap(x);
    std::vector<int32_t>().swap(y);
    std::vector<uint32_t>().swap(order);
  }
}

absl::StatusOr<FederatedData> GenerateSynthetic(const SyntheticOptions& opts) {
  FT_ASSIGN_OR_RETURN(SyntheticPopulation pop, SyntheticPopulation::Create(opts));
  const int dim = opts.dim;
  const size_t num_devices = static_cast<size_t>(opts.num_devices);

  // Sizes first, from the head of each device's stream, so the pooled arrays can be laid out
  // before any sample is drawn. The log-normal is heavy tailed and deliberately not capped
  // (§7.8: FedProx does not cap it): with sigma = 2 a device is 50x the median size about
  // once in 40 devices. The only guard is that indices must fit in uint32.
  std::vector<uint64_t> sizes(num_devices);
  uint64_t total = 0;
  for (size_t k = 0; k < num_devices; ++k) {
    sizes[k] = pop.DeviceSize(k);
    total += sizes[k];
  }
  if (total > std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "GenerateSynthetic: seed ", opts.seed, " draws ", total,
        " samples in all, more than uint32 sample indices address; use another seed or fewer "
        "devices"));
  }

  FederatedData out;
  ShapeLike(&out.train, dim, opts.classes);
  ShapeLike(&out.test, dim, opts.classes);
  out.client_train.resize(num_devices);
  uint64_t total_train = 0;
  for (uint64_t n : sizes) total_train += SyntheticPopulation::TrainSize(n);
  out.train.features.reserve(total_train * dim);
  out.train.labels.reserve(total_train);
  out.test.features.reserve((total - total_train) * dim);
  out.test.labels.reserve(total - total_train);

  // Device after device, each exactly as SyntheticPopulation generates it on demand.
  SyntheticDevice dev;
  for (size_t k = 0; k < num_devices; ++k) {
    pop.GenerateDevice(k, &dev);
    const uint32_t first = static_cast<uint32_t>(out.train.size());
    out.client_train[k].resize(dev.train.size());
    std::iota(out.client_train[k].begin(), out.client_train[k].end(), first);
    auto append = [](const Dataset& from, Dataset* to) {
      to->features.insert(to->features.end(), from.features.begin(), from.features.end());
      to->labels.insert(to->labels.end(), from.labels.begin(), from.labels.end());
    };
    append(dev.train, &out.train);
    append(dev.test, &out.test);
  }
  return out;
}

}  // namespace fedtrain
