#include "compression/payload_codec.h"

#include "absl/strings/str_cat.h"

namespace fedtrain {

absl::Status EncodePayload(const Payload& p, const Compressor& c, RngStream& rng,
                           v1::Payload* out) {
  out->Clear();
  for (const std::vector<float>& part : p.parts) {
    Encoded e;
    if (absl::Status s = c.Encode(part, rng, &e, {}); !s.ok()) return s;
    v1::Tensor* t = out->add_parts();
    t->set_codec(std::move(e.codec));
    t->set_dim(e.dim);
    t->set_data(std::move(e.bytes));
  }
  for (const auto& kv : p.scalars) (*out->mutable_scalars())[kv.first] = kv.second;
  return absl::OkStatus();
}

absl::Status DecodePayload(const v1::Payload& in, absl::Span<const absl::Cord> part_data,
                           const Compressor& c, size_t expected_parts, size_t dim, Payload* out,
                           const Compressor* dense, std::vector<bool>* is_dense) {
  if (is_dense != nullptr) is_dense->assign(expected_parts, false);
  if (static_cast<size_t>(in.parts_size()) != expected_parts)
    return absl::InvalidArgumentError(
        absl::StrCat("payload has ", in.parts_size(), " parts; expected ", expected_parts));
  if (!part_data.empty() && part_data.size() != expected_parts)  // a transport's bug
    return absl::InternalError(absl::StrCat("payload has ", expected_parts, " parts but ",
                                            part_data.size(), " received separately"));
  out->parts.resize(expected_parts);
  for (size_t i = 0; i < expected_parts; ++i) {
    const v1::Tensor& t = in.parts(static_cast<int>(i));
    if (t.dim() != dim)
      return absl::InvalidArgumentError(
          absl::StrCat("part ", i, " has ", t.dim(), " floats; model has ", dim));
    const EncodedView e(t.codec(), t.dim(), t.data());
    out->parts[i].resize(dim);
    const bool use_dense = dense != nullptr && t.codec() == dense->codec();
    if (use_dense && is_dense != nullptr) (*is_dense)[i] = true;
    const Compressor& codec = use_dense ? *dense : c;
    absl::Status s;
    if (part_data.empty()) {
      s = codec.Decode(e, absl::MakeSpan(out->parts[i]));
    } else if (!t.data().empty()) {  // a transport's bug: it checks this on receipt
      s = absl::InternalError("bytes both in the tensor and received separately");
    } else {
      s = codec.DecodeCord(e, part_data[i], absl::MakeSpan(out->parts[i]));
    }
    if (!s.ok())
      return absl::InvalidArgumentError(absl::StrCat("part ", i, ": ", s.message()));
  }
  out->scalars.clear();
  for (const auto& kv : in.scalars()) out->scalars[kv.first] = kv.second;
  return absl::OkStatus();
}

}  // namespace fedtrain
