#include "attacks/attack.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/rng.h"
#include "core/status_macros.h"

namespace fedtrain {

const std::vector<std::string>& AttackNames() {
  static const auto* names = new std::vector<std::string>{
      "none", "random_uniform", "gaussian", "sign_flip", "alie", "ipm", "label_flip",
      "crash_zero", "crash_omit", "stale", "nan", "partial_drop", "augmented"};
  return *names;
}

AttackAt DefaultAttackAt(const std::string& name) {
  return name == "label_flip" || name == "augmented" || name == "stale" ? AttackAt::kWorker
                                                                        : AttackAt::kServer;
}

absl::StatusOr<AttackAt> ParseAttackAt(const std::string& at, const std::string& name) {
  if (at.empty()) return DefaultAttackAt(name);
  if (at == "server") return AttackAt::kServer;
  if (at == "worker") return AttackAt::kWorker;
  return absl::InvalidArgumentError(
      absl::StrCat("attack.at must be \"server\" or \"worker\", got '", at, "'"));
}

bool IsVectorAttack(const std::string& name) {
  return name == "random_uniform" || name == "gaussian" || name == "sign_flip" ||
         name == "alie" || name == "ipm" || name == "crash_zero" || name == "nan" ||
         name == "partial_drop";
}

bool NeedsReference(const AttackOptions& o) {
  return o.name == "alie" || o.name == "ipm" || (o.name == "sign_flip" && o.omniscient);
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
  if (o.stale_rounds < 1 || o.stale_rounds > 1000)
    return absl::InvalidArgumentError(
        absl::StrCat("attack.stale_rounds must be in [1, 1000], got ", o.stale_rounds));
  if (!(o.rho > 0 && o.rho <= 1))
    return absl::InvalidArgumentError(absl::StrCat("attack.rho must be in (0, 1], got ", o.rho));
  if (o.at == AttackAt::kServer && DefaultAttackAt(o.name) == AttackAt::kWorker)
    return absl::InvalidArgumentError(absl::StrCat(
        "attack.name ", o.name, " acts on the faulty worker (its data or its own history); "
        "attack.at must be \"worker\", not \"server\""));
  if (o.at == AttackAt::kWorker && o.name == "crash_omit")
    return absl::InvalidArgumentError(
        "attack.name crash_omit with attack.at \"worker\": a worker that sends nothing is a "
        "stopped worker; stop the process, or use attack.at \"server\" to drop its updates");
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

absl::StatusOr<double> RoundZ(const AttackOptions& o, int64_t p, int64_t f) {
  if (o.z >= 0 || o.name != "alie") return o.z;
  const double z = AlieZ(p, f);
  if (!std::isfinite(z))
    return absl::FailedPreconditionError(absl::StrCat(
        "attack alie: this round has f = ", f, " faulty of p = ", p,
        " updates, and z = Phi^-1((p - s)/p) with s = floor(p/2 + 1) - f is infinite (the "
        "formula needs f <= floor(p/2)); set attack.z or make fewer clients faulty"));
  return z;
}

ReferenceStats ComputeReferenceStats(const AttackOptions& o, absl::Span<const ConstVec> ref) {
  ReferenceStats st;
  if (!NeedsReference(o) || ref.empty()) return st;
  const size_t n = ref[0].size();
  st.mean.assign(n, 0.0);
  for (const ConstVec& v : ref)
    for (size_t k = 0; k < n; ++k) st.mean[k] += v[k];
  for (double& m : st.mean) m /= static_cast<double>(ref.size());
  if (o.name == "alie") {
    st.stdev.assign(n, 0.0);
    if (ref.size() > 1) {
      for (const ConstVec& v : ref)
        for (size_t k = 0; k < n; ++k) {
          const double d = v[k] - st.mean[k];
          st.stdev[k] += d * d;
        }
      for (double& v : st.stdev) v = std::sqrt(v / static_cast<double>(ref.size() - 1));
    }
  }
  return st;
}

absl::Status AttackVector(const AttackOptions& o, uint64_t round, ClientId id, double z,
                          const ReferenceStats& stats, ConstVec own, std::vector<float>* out) {
  const size_t n = own.size();
  if (NeedsReference(o) && stats.mean.size() != n)
    return absl::InvalidArgumentError(absl::StrCat("attack ", o.name, ": client ", id, " has ", n,
                                                   " values, the round's reference ",
                                                   stats.mean.size()));
  out->assign(n, 0.0f);
  std::vector<float>& v = *out;
  RngStream rng = RngStream::For(o.seed, round, id, Purpose::kAttack);
  // The message of a gradient g is -g (see the sign convention in attack.h).
  const double sign = o.gradient_space ? -1.0 : 1.0;
  if (o.name == "random_uniform") {
    for (float& e : v) e = static_cast<float>(sign * rng.Uniform());
  } else if (o.name == "gaussian") {
    for (float& e : v) e = static_cast<float>(rng.Normal(0.0, o.sigma));
  } else if (o.name == "sign_flip") {
    for (size_t k = 0; k < n; ++k)
      v[k] = static_cast<float>(-o.scale * (o.omniscient ? stats.mean[k]
                                                         : static_cast<double>(own[k])));
  } else if (o.name == "alie") {
    for (size_t k = 0; k < n; ++k)
      v[k] = static_cast<float>(stats.mean[k] - sign * z * stats.stdev[k]);
  } else if (o.name == "ipm") {
    for (size_t k = 0; k < n; ++k) v[k] = static_cast<float>(-o.eps * stats.mean[k]);
  } else if (o.name == "crash_zero") {
    // zeros already
  } else if (o.name == "nan") {
    std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN());
  } else if (o.name == "partial_drop") {
    for (size_t k = 0; k < n; ++k) v[k] = rng.Uniform() < o.drop_prob ? 0.0f : own[k];
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("attack.name '", o.name, "' does not replace update vectors"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ApplyAttack(const AttackOptions& o, uint64_t round,
                                    std::vector<ClientUpdate>* updates,
                                    std::vector<std::vector<float>>* storage) {
  if (!o.active() || o.at != AttackAt::kServer) return 0;
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
  if (!IsVectorAttack(o.name))
    return absl::InvalidArgumentError(
        absl::StrCat("attack.name ", o.name, " cannot act at the server (attack.at)"));
  const size_t parts = (*updates)[bad[0]].parts.size();
  storage->clear();
  storage->reserve(bad.size() * parts);  // spans into it must not move
  // Statistics over the honest vectors (or, without omniscience, the faulty clients' own).
  const std::vector<size_t>& ref = o.omniscient && !good.empty() ? good : bad;
  FT_ASSIGN_OR_RETURN(const double z, RoundZ(o, static_cast<int64_t>(updates->size()), attacked));
  for (size_t part = 0; part < parts; ++part) {
    const size_t n = (*updates)[bad[0]].parts[part].size();
    std::vector<ConstVec> refs;
    for (size_t i : ref) refs.push_back((*updates)[i].parts[part]);
    const ReferenceStats stats = ComputeReferenceStats(o, refs);
    for (size_t i : bad) {
      ClientUpdate& u = (*updates)[i];
      if (u.parts[part].size() != n)
        return absl::InvalidArgumentError(absl::StrCat("attack: client ", u.id, " part ", part,
                                                       " has ", u.parts[part].size(),
                                                       " values, expected ", n));
      storage->emplace_back();
      FT_RETURN_IF_ERROR(AttackVector(o, round, u.id, z, stats, u.parts[part], &storage->back()));
      u.parts[part] = ConstVec(storage->back());
    }
  }
  return attacked;
}

}  // namespace fedtrain
