// Synthetic(alpha, beta) generator, specs/federated.md §7.8 (FedProx's data/synthetic_*).
//
// Every draw for device k comes from its own stream RngStream::For(seed, 0, k,
// kSyntheticData), in this order: size, then (non-IID only) u_k, B_k, v_k, W_k, b_k, then the
// samples' noise, then the train/test shuffle. Device k's data therefore depend only on
// (seed, k, options) and not on the order in which devices are generated. The IID variant's
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
// model will see.
int32_t Label(const float* x, const Teacher& t, int dim, int classes) {
  int32_t best = 0;
  double best_logit = -std::numeric_limits<double>::infinity();
  for (int c = 0; c < classes; ++c) {
    double logit = t.b[c];
    for (int j = 0; j < dim; ++j) logit += static_cast<double>(x[j]) * t.w[j * classes + c];
    if (logit > best_logit) {
      best_logit = logit;
      best = c;
    }
  }
  return best;
}

}  // namespace

absl::StatusOr<FederatedData> GenerateSynthetic(const SyntheticOptions& opts) {
  FT_RETURN_IF_ERROR(Validate(opts));
  const int dim = opts.dim;
  const int classes = opts.classes;
  const size_t num_devices = static_cast<size_t>(opts.num_devices);

  // Sizes first, from the head of each device's stream, so the pooled arrays can be laid out
  // before any sample is drawn. The log-normal is heavy tailed and deliberately not capped
  // (§7.8: FedProx does not cap it): with sigma = 2 a device is 50x the median size about
  // once in 40 devices. The only guard is that indices must fit in uint32.
  std::vector<RngStream> streams;
  std::vector<uint64_t> sizes(num_devices);
  streams.reserve(num_devices);
  uint64_t total = 0;
  for (size_t k = 0; k < num_devices; ++k) {
    streams.push_back(RngStream::For(opts.seed, 0, k, Purpose::kSyntheticData));
    const double draw = std::floor(std::exp(kLogSizeMean + kLogSizeSigma * streams[k].Normal()));
    // Box-Muller normals are below 8.6, so draw < e^21.2 < 2^31: the cast is exact.
    sizes[k] = static_cast<uint64_t>(draw) + kMinDeviceSize;
    total += sizes[k];
  }
  if (total > std::numeric_limits<uint32_t>::max()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "GenerateSynthetic: seed ", opts.seed, " draws ", total,
        " samples in all, more than uint32 sample indices address; use another seed or fewer "
        "devices"));
  }

  // §7.8 IID variant: one teacher for all devices, from a stream no device uses.
  Teacher shared;
  if (opts.iid) {
    RngStream rng = RngStream::For(opts.seed, 0, num_devices, Purpose::kSyntheticData);
    shared = DrawTeacher(rng, dim, classes, 0.0);
  }

  // §7.8 step 3: Sigma = diag(j^-1.2), j = 1..dim; x_j = v_j + sqrt(Sigma_jj) * z.
  std::vector<double> stddev(dim);
  for (int j = 0; j < dim; ++j) stddev[j] = std::pow(static_cast<double>(j + 1), -0.6);

  FederatedData out;
  for (Dataset* d : {&out.train, &out.test}) {
    d->num_features = static_cast<size_t>(dim);
    d->num_classes = classes;
  }
  out.client_train.resize(num_devices);
  uint64_t total_train = 0;
  for (uint64_t n : sizes) total_train += n * kTrainNumerator / kTrainDenominator;
  out.train.features.reserve(total_train * dim);
  out.train.labels.reserve(total_train);
  out.test.features.reserve((total - total_train) * dim);
  out.test.labels.reserve(total - total_train);

  std::vector<double> v(dim);
  std::vector<float> x;
  std::vector<int32_t> y;
  std::vector<uint32_t> order;
  for (size_t k = 0; k < num_devices; ++k) {
    RngStream& rng = streams[k];
    const uint64_t n = sizes[k];
    Teacher own;
    if (opts.iid) {
      std::fill(v.begin(), v.end(), 0.0);
    } else {
      // §7.8 step 2: alpha and beta are standard deviations ([A], ambiguity register 8).
      const double u = rng.Normal(0.0, opts.alpha);
      const double big_b = rng.Normal(0.0, opts.beta);
      for (double& vj : v) vj = rng.Normal(big_b, 1.0);
      own = DrawTeacher(rng, dim, classes, u);  // step 4: W_k and b_k both ~ N(u_k, 1)
    }
    const Teacher& teacher = opts.iid ? shared : own;

    x.resize(n * dim);
    y.resize(n);
    for (uint64_t i = 0; i < n; ++i) {
      float* xi = x.data() + i * dim;
      for (int j = 0; j < dim; ++j) {
        xi[j] = static_cast<float>(v[j] + stddev[j] * rng.Normal());
      }
      y[i] = Label(xi, teacher, dim, classes);
    }

    // §7.8 step 6. The samples are i.i.d. within a device, so the shuffle changes no
    // distribution; it is kept so the split follows the reference procedure draw for draw.
    order.resize(n);
    std::iota(order.begin(), order.end(), 0u);
    rng.Shuffle(absl::MakeSpan(order));
    const uint64_t n_train = n * kTrainNumerator / kTrainDenominator;
    for (uint64_t i = 0; i < n; ++i) {
      Dataset& d = i < n_train ? out.train : out.test;
      if (i < n_train) out.client_train[k].push_back(static_cast<uint32_t>(d.size()));
      const float* src = x.data() + static_cast<size_t>(order[i]) * dim;
      d.features.insert(d.features.end(), src, src + dim);
      d.labels.push_back(y[order[i]]);
    }
  }
  return out;
}

}  // namespace fedtrain
