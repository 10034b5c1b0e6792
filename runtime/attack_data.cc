#include "runtime/attack_data.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "attacks/augment.h"
#include "core/rng.h"
#include "data/dataset.h"

namespace fedtrain {
namespace {

constexpr int kImageSide = 28;  // Fashion-MNIST

bool IsDataAttack(const AttackOptions& a) {
  return a.active() && a.at == AttackAt::kWorker &&
         (a.name == "label_flip" || a.name == "augmented");
}

}  // namespace

absl::Status CheckDataAttack(const v1::ExperimentConfig& cfg) {
  if (cfg.attack().name() == "augmented" && cfg.data().dataset() != "fashion_mnist")
    return absl::InvalidArgumentError(absl::StrCat(
        "attack.name augmented warps images, but data.dataset is '", cfg.data().dataset(),
        "': it needs data.dataset fashion_mnist"));
  return absl::OkStatus();
}

ClientDataFn WithDataAttack(ClientDataFn base, const AttackOptions& a, const ExperimentData& data) {
  if (!IsDataAttack(a)) return base;
  // A black pixel in the features' own units: what the warp moves in from outside the image.
  float fill = 0.0f;
  if (data.standardization)
    fill = static_cast<float>((0.0 - data.standardization->mean) / data.standardization->std);
  auto maps = std::make_shared<std::vector<std::vector<int32_t>>>();
  if (a.name == "augmented")
    for (int k = 0; k < kNumWarps; ++k)
      maps->push_back(LotkaVolterraMap(kImageSide, kImageSide, WarpTime(k)));
  auto buf = std::make_shared<Dataset>();
  return [base = std::move(base), a, fill, maps, buf](ClientId id) -> absl::StatusOr<DataView> {
    absl::StatusOr<DataView> view = base(id);
    if (!view.ok() || !a.clients.count(id)) return view;
    const Dataset& src = *view->data;
    const size_t n = view->size(), f = src.num_features;
    buf->num_features = f;
    buf->num_classes = src.num_classes;
    buf->features.resize(n * f);
    buf->labels.resize(n);
    if (a.name == "augmented" && f != static_cast<size_t>(kImageSide * kImageSide))
      return absl::InvalidArgumentError(absl::StrCat(
          "attack augmented: client ", id, "'s samples have ", f, " features, not a ", kImageSide,
          "x", kImageSide, " image"));
    RngStream rng = RngStream::For(a.seed, kDataAttackRound, id, Purpose::kAttack);
    for (size_t i = 0; i < n; ++i) {
      const uint32_t row = view->index(i);
      const float* in = src.features.data() + static_cast<size_t>(row) * f;
      float* out = buf->features.data() + i * f;
      int32_t y = src.labels[row];
      if (a.name == "label_flip") {
        y = src.num_classes - 1 - y;
        std::copy(in, in + f, out);
      } else {  // augmented: two draws per sample whatever rho is, so rho moves no other draw
        const bool warp = rng.Uniform() < a.rho;
        const auto k = static_cast<size_t>(rng.UniformInt(kNumWarps));
        if (warp) {
          ApplyWarp((*maps)[k], fill, in, out);
        } else {
          std::copy(in, in + f, out);
        }
      }
      buf->labels[i] = y;
    }
    return DataView::All(*buf);
  };
}

}  // namespace fedtrain
