#include "runtime/uplink_setup.h"

#include <algorithm>

#include "compression/error_feedback.h"
#include "core/status_macros.h"
#include "runtime/privacy_setup.h"

namespace fedtrain {

absl::StatusOr<std::unique_ptr<UplinkCodec>> MakeUplinkCodec(const v1::ExperimentConfig& cfg,
                                                             size_t dim) {
  const v1::CompressionConfig& cc = cfg.compression();
  CompressorOptions o;
  o.compressor = cc.compressor();
  o.k_fraction = cc.k_fraction();
  o.k = cc.k();
  o.levels = cc.levels();
  o.bucket = cc.bucket();
  o.index_encoding = cc.index_encoding();
  o.value_type = cc.value_type();
  FT_ASSIGN_OR_RETURN(const std::optional<PrivacyPlan> plan, MakePrivacyPlan(cfg, dim));
  if (plan && plan->mechanism == "gaussian") {
    o.compressor = "gaussian";
    // central: the clients only clip (to l2 norm S); the server adds the noise
    // (CoordinatorOptions::central_noise_sigma).
    const bool central = cfg.privacy().placement() == "central";
    o.gaussian_placement = central ? "distributed" : cfg.privacy().placement();
    o.gaussian_clip = cfg.privacy().clip();
    o.gaussian_sigma = central ? 0.0 : plan->sigma;
  } else if (plan) {  // rqm (config_io.cc checked compressor identity, feedback none)
    o.compressor = "rqm";
    o.rqm_clip = plan->rqm.clip;
    o.rqm_range_extension = plan->rqm.delta;
    o.rqm_levels = plan->rqm.levels;
    o.rqm_keep = plan->rqm.keep;
  }
  UplinkOptions u;
  FT_ASSIGN_OR_RETURN(u.feedback.method, ParseFeedback(cc.feedback()));
  u.feedback.eta = std::max(0.0, cc.eta());  // -1 = unset; validated for econtrol
  u.feedback.init =
      cc.tracker_init() == "compressed" ? TrackerInit::kCompressed : TrackerInit::kDense;
  u.clip_norm = cc.clip_norm();
  return UplinkCodec::Create(o, u, dim);
}

}  // namespace fedtrain
