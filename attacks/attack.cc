#include "attacks/attack.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/rng.h"

namespace fedtrain {

const std::vector<std::string>& AttackNames() {
  static const auto* names = new std::vector<std::string>{
      "none", "random_uniform", "gaussian", "sign_flip", "alie", "ipm",
      "crash_zero", "crash_omit", "nan", "partial_drop"};
  return *names;
}

absl::Status ValidateAttack(const AttackOptions& o) {
  const auto& n = AttackNames();
  if (std::find(n.begin(), n.end(), o.name) == n.end())
    return absl::InvalidArgumentError(absl::StrCat("attack.name must be one of ",
                                                   absl::StrJoin(n, ", "), "; got '", o.name, "'"));
  if (!(o.sigma > 0) || !std::isfinite(o.sigma))
    return absl::InvalidArgumentError(absl::StrCat("attack.sigma must be > 0, got ", o.sigma));
  if (!std::isfinite(o.scale))
    return absl::InvalidArgumentError(absl::StrCat("attack.scale must be finite, got ", o.scale));
  if (!std::isfinite(o.z))
    return absl::InvalidArgumentError(absl::StrCat("attack.z must be finite, got ", o.z));
  if (!(o.eps >= 0) || !std::isfinite(o.eps))
    return absl::InvalidArgumentError(absl::StrCat("attack.eps must be >= 0, got ", o.eps));
  if (!(o.drop_prob >= 0 && o.drop_prob <= 1))
    return absl::InvalidArgumentError(
        absl::StrCat("attack.drop_prob must be in [0, 1], got ", o.drop_prob));
  return absl::OkStatus();
}

double AlieZ(int64_t p, int64_t f) {
  const double s = std::floor(static_cast<double>(p) / 2.0 + 1.0) - static_cast<double>(f);
  const double q = (static_cast<double>(p) - s) / static_cast<double>(p);
  if (q <= 0.0) return -std::numeric_limits<double>::infinity();
  if (q >= 1.0) return std::numeric_limits<double>::infinity();
  // Phi^-1 by bisection on Phi(x) = erfc(-x / sqrt 2) / 2 (monotone; 200 halvings reach
  // double resolution on [-40, 40]).
  double lo = -40.0, hi = 40.0;
  for (int i = 0; i < 200; ++i) {
    const double mid = 0.5 * (lo + hi);
    if (0.5 * std::erfc(-mid / std::sqrt(2.0)) < q) lo = mid; else hi = mid;
  }
  return 0.5 * (lo + hi);
}

absl::StatusOr<int64_t> ApplyAttack(const AttackOptions& o, uint64_t round,
                                    std::vector<ClientUpdate>* updates,
                                    std::vector<std::vector<float>>* storage) {
  if (!o.active()) return 0;
  std::vector<size_t> bad, good;
  for (size_t i = 0; i < updates->size(); ++i)
    (o.clients.count((*updates)[i].id) ? bad : good).push_back(i);
  if (bad.empty()) return 0;
  const int64_t attacked = static_cast<int64_t>(bad.size());
  if (o.name == "crash_omit") {
    std::vector<ClientUpdate> kept;
    for (size_t i : good) kept.push_back((*updates)[i]);
    *updates = std::move(kept);
    return attacked;
  }
  const size_t parts = (*updates)[bad[0]].parts.size();
  storage->clear();
  storage->reserve(bad.size() * parts);  // spans into it must not move
  // Statistics over the honest vectors (or, without omniscience, the faulty clients' own).
  const std::vector<size_t>& ref = o.omniscient && !good.empty() ? good : bad;
  for (size_t part = 0; part < parts; ++part) {
    const size_t n = (*updates)[bad[0]].parts[part].size();
    std::vector<double> mean, stdev;
    if (o.name == "alie" || o.name == "ipm" || (o.name == "sign_flip" && o.omniscient)) {
      mean.assign(n, 0.0);
      for (size_t i : ref)
        for (size_t k = 0; k < n; ++k) mean[k] += (*updates)[i].parts[part][k];
      for (double& m : mean) m /= static_cast<double>(ref.size());
      if (o.name == "alie") {
        stdev.assign(n, 0.0);
        if (ref.size() > 1) {
          for (size_t i : ref)
            for (size_t k = 0; k < n; ++k) {
              const double d = (*updates)[i].parts[part][k] - mean[k];
              stdev[k] += d * d;
            }
          for (double& v : stdev) v = std::sqrt(v / static_cast<double>(ref.size() - 1));
        }
      }
    }
    const double z = o.z >= 0 ? o.z
                              : AlieZ(static_cast<int64_t>(updates->size()), attacked);
    for (size_t i : bad) {
      ClientUpdate& u = (*updates)[i];
      if (u.parts[part].size() != n)
        return absl::InvalidArgumentError(absl::StrCat("attack: client ", u.id, " part ", part,
                                                       " has ", u.parts[part].size(),
                                                       " values, expected ", n));
      storage->emplace_back(n);
      std::vector<float>& v = storage->back();
      RngStream rng = RngStream::For(o.seed, round, u.id, Purpose::kAttack);
      const ConstVec own = u.parts[part];
      if (o.name == "random_uniform") {
        for (float& e : v) e = static_cast<float>(rng.Uniform());
      } else if (o.name == "gaussian") {
        for (float& e : v) e = static_cast<float>(rng.Normal(0.0, o.sigma));
      } else if (o.name == "sign_flip") {
        for (size_t k = 0; k < n; ++k)
          v[k] = static_cast<float>(-o.scale * (o.omniscient ? mean[k] : static_cast<double>(own[k])));
      } else if (o.name == "alie") {
        for (size_t k = 0; k < n; ++k) v[k] = static_cast<float>(mean[k] - z * stdev[k]);
      } else if (o.name == "ipm") {
        for (size_t k = 0; k < n; ++k) v[k] = static_cast<float>(-o.eps * mean[k]);
      } else if (o.name == "crash_zero") {
        // zeros already
      } else if (o.name == "nan") {
        std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN());
      } else if (o.name == "partial_drop") {
        for (size_t k = 0; k < n; ++k) v[k] = rng.Uniform() < o.drop_prob ? 0.0f : own[k];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("attack.name '", o.name, "' is unknown"));
      }
      u.parts[part] = ConstVec(v);
    }
  }
  return attacked;
}

}  // namespace fedtrain
