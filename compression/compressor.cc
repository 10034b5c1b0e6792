#include "compression/compressor.h"

#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace fedtrain {

static_assert(sizeof(float) == 4, "float32 wire format");
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "identity/1 is little-endian float32 on the wire; this codec assumes a little-endian host"
#endif

absl::Status IdentityCompressor::Encode(ConstVec x, RngStream&, Encoded* out, Vec decoded) const {
  out->codec = codec();
  out->dim = x.size();
  out->bytes.assign(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(float));
  if (!decoded.empty()) std::memcpy(decoded.data(), x.data(), x.size() * sizeof(float));
  return absl::OkStatus();
}

absl::Status IdentityCompressor::Decode(const Encoded& in, Vec out) const {
  if (in.codec != codec())
    return absl::InvalidArgumentError(
        absl::StrCat("codec '", in.codec, "' where '", codec(), "' was expected"));
  if (in.dim != out.size())
    return absl::InvalidArgumentError(
        absl::StrCat("vector of ", in.dim, " floats; model has ", out.size()));
  if (in.bytes.size() != in.dim * sizeof(float))
    return absl::InvalidArgumentError(absl::StrCat("identity/1 payload of ", in.bytes.size(),
                                                   " bytes for ", in.dim, " floats"));
  if (!in.bytes.empty()) std::memcpy(out.data(), in.bytes.data(), in.bytes.size());
  return CheckFinite(out, "decoded vector");
}

absl::StatusOr<std::unique_ptr<Compressor>> MakeCompressor(const std::string& name) {
  if (name == "identity") return std::unique_ptr<Compressor>(new IdentityCompressor());
  return absl::NotFoundError(absl::StrCat("unknown compressor '", name, "'; known: identity"));
}

absl::Status CheckFinite(ConstVec v, const std::string& what) {
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has a non-finite value (", v[i], ") at index ", i));
  return absl::OkStatus();
}

}  // namespace fedtrain
