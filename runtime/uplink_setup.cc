#include "runtime/uplink_setup.h"

#include <algorithm>

#include "compression/error_feedback.h"
#include "core/status_macros.h"

namespace fedtrain {

absl::StatusOr<Uplink> MakeUplink(const v1::CompressionConfig& cc, size_t dim) {
  Uplink up;
  CompressorOptions o;
  o.compressor = cc.compressor();
  o.k_fraction = cc.k_fraction();
  o.k = cc.k();
  o.levels = cc.levels();
  o.bucket = cc.bucket();
  o.index_encoding = cc.index_encoding();
  o.value_type = cc.value_type();
  FT_ASSIGN_OR_RETURN(up.compressor, MakeCompressor(o, dim));
  FT_ASSIGN_OR_RETURN(up.options.feedback.method, ParseFeedback(cc.feedback()));
  up.options.feedback.eta = std::max(0.0, cc.eta());  // -1 = unset; validated for econtrol
  up.options.feedback.init =
      cc.tracker_init() == "compressed" ? TrackerInit::kCompressed : TrackerInit::kDense;
  up.options.clip_norm = cc.clip_norm();
  FT_RETURN_IF_ERROR(ValidateFeedbackOptions(up.options.feedback));
  if (HasTracker(up.options.feedback.method)) {
    CompressorOptions dense;
    dense.value_type = cc.value_type();
    FT_ASSIGN_OR_RETURN(up.dense, MakeCompressor(dense, dim));
  }
  return up;
}

}  // namespace fedtrain
