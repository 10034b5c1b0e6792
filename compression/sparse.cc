// Sparse compressors (docs/compression.md §1.2, §1.3): Top-K, Rand-K (unscaled, contractive)
// and Rand-K scaled by d/k (unbiased), with the index encodings of §1.7.
//
// Payload (after the 16-byte header of compressor_internal.h; n = header field b = values
// sent, k = header field a; value bits V = 32 for f32, 64 for f64):
//   n values (little-endian f32 or f64, ascending index order), then the index section:
//   packed  n indices of ceil(log2 d) bits, LSB first, zero-padded to a byte   n (B_i + V)
//   u32     n little-endian uint32 indices                                     n (32 + V)
//   varint  n LEB128 gaps: i_0, then i_j - i_{j-1} - 1                         data-dependent
//   bitmap  d bits (bit j set iff j is sent), zero-padded to a byte            d + n V
//   seed    the 64-bit Rand-K seed (indices = SampleRandK(seed, d, k))         64 + k V
// Top-K sends n = min(k, nnz(x)) values; Rand-K always sends n = k (zeros included).
// "auto" picks the smallest of packed, varint, bitmap for the message (ties: that order).
//
// Costs: Top-K O(d) selection (topk_select.h); Rand-K O(k) draws plus O(d/64) to sort the
// set; decoding O(d) to zero the dense output plus O(n).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "compression/bit_io.h"
#include "compression/compressor_internal.h"
#include "compression/topk_select.h"
#include "core/status_macros.h"

namespace fedtrain {
namespace compression_internal {

void SampleRandK(uint64_t seed, size_t d, size_t k, std::vector<uint32_t>* out) {
  FT_CHECK(k > 0 && k <= d && d <= UINT32_MAX);
  RngStream rng(seed, 0, 0, static_cast<uint64_t>(Purpose::kCompression));
  out->clear();
  out->reserve(k);
  // Floyd's algorithm: for j = d-k .. d-1 draw t uniform in [0, j]; insert t, or j when t is
  // already in the set. Every k-subset is equally likely; the draws (and so the set) do not
  // depend on how membership is stored, so both stores below give the same set.
  if (d / 64 <= 16 * k + 1024) {
    std::vector<uint64_t> bits((d + 63) / 64, 0);
    for (size_t j = d - k; j < d; ++j) {
      size_t t = static_cast<size_t>(rng.UniformInt(j + 1));
      if (bits[t >> 6] >> (t & 63) & 1) t = j;
      bits[t >> 6] |= uint64_t{1} << (t & 63);
    }
    for (size_t w = 0; w < bits.size(); ++w) {
      uint64_t b = bits[w];
      while (b != 0) {
        out->push_back(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(b))));
        b &= b - 1;
      }
    }
  } else {
    std::unordered_set<uint32_t> set;
    set.reserve(2 * k);
    for (size_t j = d - k; j < d; ++j) {
      size_t t = static_cast<size_t>(rng.UniformInt(j + 1));
      if (set.count(static_cast<uint32_t>(t))) t = j;
      set.insert(static_cast<uint32_t>(t));
      out->push_back(static_cast<uint32_t>(t));
    }
    std::sort(out->begin(), out->end());
  }
}

namespace {

const char* KindName(uint8_t kind) {
  switch (kind) {
    case kKindTopK:
      return "topk";
    case kKindRandK:
      return "randk";
    default:
      return "randk_scaled";
  }
}

const char* EncodingName(uint8_t e) {
  switch (e) {
    case kEncPacked:
      return "packed";
    case kEncU32:
      return "u32";
    case kEncVarint:
      return "varint";
    case kEncBitmap:
      return "bitmap";
    case kEncSeed:
      return "seed";
    case kEncAuto:
      return "auto";
    default:
      return "none";
  }
}

class SparseCompressor final : public CompressorBase<SparseCompressor> {
 public:
  explicit SparseCompressor(const SparseConfig& c)
      : c_(c), index_bits_(CeilLog2(c.d)), value_bytes_(c.value_type == kF64 ? 8 : 4) {}

  std::string codec() const override { return absl::StrCat(KindName(c_.kind), "/1"); }
  size_t dim() const override { return c_.d; }
  CompressorInfo info() const override {
    const double kd = static_cast<double>(c_.k) / static_cast<double>(c_.d);
    if (c_.kind == kKindRandKScaled) return {true, true, 0.0, 1.0 / kd - 1.0};
    return {false, true, kd, 0.0};
  }
  uint64_t PayloadBits() const override {
    const uint64_t v = 8ull * value_bytes_;
    const uint64_t k = c_.k;
    switch (c_.encoding) {
      case kEncU32:
        return k * (32 + v);
      case kEncBitmap:
        return c_.d + k * v;
      case kEncSeed:
        return 64 + k * v;
      default:  // packed, and the packed size for varint / auto (which never exceeds it)
        return k * (index_bits_ + v);
    }
  }

  template <typename T>
  absl::Status EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                       absl::Span<T> decoded) const;
  template <typename T>
  absl::Status DecodeT(const EncodedView& in, absl::Span<T> out) const;

 private:
  size_t IndexSectionBytes(uint8_t enc, size_t n) const {
    switch (enc) {
      case kEncPacked:
        return (n * index_bits_ + 7) / 8;
      case kEncU32:
        return 4 * n;
      case kEncBitmap:
        return (c_.d + 7) / 8;
      case kEncSeed:
        return 8;
      default:
        return 0;
    }
  }
  static size_t VarintBytes(const std::vector<uint32_t>& idx) {
    size_t total = 0;
    uint32_t prev = 0;
    for (size_t j = 0; j < idx.size(); ++j) {
      total += static_cast<size_t>(Varint32Size(j == 0 ? idx[0] : idx[j] - prev - 1));
      prev = idx[j];
    }
    return total;
  }
  template <typename VT, typename T>
  absl::Status EncodeValues(absl::Span<const T> x, const std::vector<uint32_t>& idx,
                            std::string* bytes, absl::Span<T> decoded) const;
  template <typename VT, typename T>
  absl::Status DecodeValues(const char* p, const std::vector<uint32_t>& idx,
                            absl::Span<T> out) const;

  SparseConfig c_;
  int index_bits_;
  size_t value_bytes_;
};

template <typename VT, typename T>
absl::Status SparseCompressor::EncodeValues(absl::Span<const T> x,
                                            const std::vector<uint32_t>& idx,
                                            std::string* bytes, absl::Span<T> decoded) const {
  // Rand-K scaled: the value sent is (d/k) x_j computed in double, then rounded to VT.
  const double scale = c_.kind == kKindRandKScaled
                           ? static_cast<double>(c_.d) / static_cast<double>(c_.k)
                           : 1.0;
  const size_t base = bytes->size();
  bytes->resize(base + idx.size() * sizeof(VT));
  char* p = bytes->data() + base;
  for (size_t j = 0; j < idx.size(); ++j) {
    const VT v = static_cast<VT>(static_cast<double>(x[idx[j]]) * scale);
    if (!std::isfinite(v))
      return absl::InvalidArgumentError(absl::StrCat(
          codec(), ": value at index ", idx[j], " (", static_cast<double>(x[idx[j]]),
          ") is not finite on the wire"));
    StoreLE<VT>(p + j * sizeof(VT), v);
    if (!decoded.empty()) decoded[idx[j]] = static_cast<T>(v);
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status SparseCompressor::EncodeT(absl::Span<const T> x, RngStream& rng, Encoded* out,
                                       absl::Span<T> decoded) const {
  FT_RETURN_IF_ERROR(CheckEncodeArgs(*this, x.size(), decoded.size()));
  std::vector<uint32_t> idx;
  uint64_t seed = 0;
  if (c_.kind == kKindTopK) {
    FT_RETURN_IF_ERROR(TopKIndices(x, c_.k, &idx));
  } else {
    // Always one seed from the caller's stream, whatever the encoding: the index set of a
    // given stream is the same for every encoding.
    seed = rng.NextU64();
    SampleRandK(seed, c_.d, c_.k, &idx);
  }
  const size_t n = idx.size();
  uint8_t enc = c_.encoding;
  if (enc == kEncAuto) {
    // Smallest of packed, varint, bitmap for this message; ties keep the earlier one.
    enc = kEncPacked;
    size_t best = IndexSectionBytes(kEncPacked, n);
    const size_t varint = VarintBytes(idx);
    if (varint < best) {
      enc = kEncVarint;
      best = varint;
    }
    if (IndexSectionBytes(kEncBitmap, n) < best) enc = kEncBitmap;
  }

  out->codec = codec();
  out->dim = c_.d;
  out->bytes.clear();
  out->bytes.reserve(kHeaderBytes + n * value_bytes_ + IndexSectionBytes(enc, n) +
                     (enc == kEncVarint ? 5 * n : 0));
  Header h;
  h.kind = c_.kind;
  h.encoding = enc;
  h.value_type = c_.value_type;
  h.d = static_cast<uint32_t>(c_.d);
  h.a = c_.k;
  h.b = static_cast<uint32_t>(n);
  WriteHeader(h, &out->bytes);
  if (!decoded.empty()) std::fill(decoded.begin(), decoded.end(), T{0});
  if (c_.value_type == kF64) {
    FT_RETURN_IF_ERROR((EncodeValues<double, T>(x, idx, &out->bytes, decoded)));
  } else {
    FT_RETURN_IF_ERROR((EncodeValues<float, T>(x, idx, &out->bytes, decoded)));
  }
  std::string& b = out->bytes;
  switch (enc) {
    case kEncPacked: {
      const size_t base = b.size();
      b.resize(base + IndexSectionBytes(kEncPacked, n));
      PackBits(idx.data(), n, index_bits_, b.data() + base);
      break;
    }
    case kEncU32:
      for (uint32_t i : idx) AppendLE<uint32_t>(&b, i);
      break;
    case kEncVarint:
      for (size_t j = 0; j < n; ++j) PutVarint32(&b, j == 0 ? idx[0] : idx[j] - idx[j - 1] - 1);
      break;
    case kEncBitmap: {
      const size_t base = b.size();
      b.resize(base + IndexSectionBytes(kEncBitmap, n), 0);
      char* p = b.data() + base;
      for (uint32_t i : idx) p[i >> 3] = static_cast<char>(p[i >> 3] | (1 << (i & 7)));
      break;
    }
    case kEncSeed:
      AppendLE<uint64_t>(&b, seed);
      break;
  }
  return absl::OkStatus();
}

template <typename VT, typename T>
absl::Status SparseCompressor::DecodeValues(const char* p, const std::vector<uint32_t>& idx,
                                            absl::Span<T> out) const {
  std::fill(out.begin(), out.end(), T{0});
  for (size_t j = 0; j < idx.size(); ++j) {
    const VT v = LoadLE<VT>(p + j * sizeof(VT));
    // A float output cannot hold an f64 value beyond float range: refuse it too.
    if (!std::isfinite(v) || !std::isfinite(static_cast<T>(v)))
      return absl::InvalidArgumentError(absl::StrCat(codec(), ": value ", j, " (index ",
                                                     idx[j], ") is not finite"));
    out[idx[j]] = static_cast<T>(v);
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status SparseCompressor::DecodeT(const EncodedView& in, absl::Span<T> out) const {
  FT_RETURN_IF_ERROR(CheckEnvelope(*this, in, out.size()));
  Header h;
  FT_RETURN_IF_ERROR(ReadHeader(in.bytes, &h));
  const std::string name = codec();
  if (h.kind != c_.kind)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": header kind ", static_cast<int>(h.kind), ", expected ", static_cast<int>(c_.kind)));
  if (h.value_type != c_.value_type)
    return absl::InvalidArgumentError(absl::StrCat(name, ": header value type ", static_cast<int>(h.value_type),
                                                   ", expected ", static_cast<int>(c_.value_type)));
  const bool enc_ok = c_.encoding == kEncAuto
                          ? (h.encoding == kEncPacked || h.encoding == kEncVarint ||
                             h.encoding == kEncBitmap)
                          : h.encoding == c_.encoding;
  if (!enc_ok)
    return absl::InvalidArgumentError(absl::StrCat(name, ": index encoding ",
                                                   EncodingName(h.encoding), " (",
                                                   static_cast<int>(h.encoding), "), configured ",
                                                   EncodingName(c_.encoding)));
  if (h.d != c_.d)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": header d = ", h.d, ", expected ", c_.d));
  if (h.a != c_.k)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": header k = ", h.a, ", configured k = ", c_.k));
  const size_t n = h.b;
  if (n > c_.k)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", n, " values sent, more than k = ", c_.k));
  if (c_.kind != kKindTopK && n != c_.k)
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": ", n, " values sent; Rand-K sends exactly k = ", c_.k));

  const size_t values_bytes = n * value_bytes_;
  const size_t total = in.bytes.size();
  if (total < kHeaderBytes + values_bytes)
    return absl::InvalidArgumentError(absl::StrCat(name, ": message of ", total,
                                                   " bytes is too short for ", n, " values"));
  const char* values = in.bytes.data() + kHeaderBytes;
  const char* sec = values + values_bytes;
  const char* end = in.bytes.data() + total;
  const size_t sec_bytes = static_cast<size_t>(end - sec);
  if (h.encoding != kEncVarint && sec_bytes != IndexSectionBytes(h.encoding, n))
    return absl::InvalidArgumentError(
        absl::StrCat(name, ": message of ", total, " bytes; ", EncodingName(h.encoding),
                     " encoding of ", n, " values needs ",
                     kHeaderBytes + values_bytes + IndexSectionBytes(h.encoding, n)));

  std::vector<uint32_t> idx;
  switch (h.encoding) {
    case kEncPacked: {
      idx.resize(n);
      UnpackBits(sec, n, index_bits_, idx.data());
      const size_t used_bits = n * static_cast<size_t>(index_bits_);
      if (used_bits % 8 != 0 &&
          (static_cast<uint8_t>(sec[sec_bytes - 1]) >> (used_bits % 8)) != 0)
        return absl::InvalidArgumentError(absl::StrCat(name, ": non-zero padding bits"));
      break;
    }
    case kEncU32:
      idx.resize(n);
      for (size_t j = 0; j < n; ++j) idx[j] = LoadLE<uint32_t>(sec + 4 * j);
      break;
    case kEncVarint: {
      idx.resize(n);
      const char* p = sec;
      uint64_t pos = 0;
      for (size_t j = 0; j < n; ++j) {
        uint32_t gap;
        if (!GetVarint32(&p, end, &gap))
          return absl::InvalidArgumentError(
              absl::StrCat(name, ": varint index ", j, " is truncated or malformed"));
        pos = (j == 0 ? 0 : pos + 1) + gap;
        if (pos >= c_.d)
          return absl::InvalidArgumentError(absl::StrCat(
              name, ": index ", pos, " (entry ", j, ") is out of range [0, ", c_.d, ")"));
        idx[j] = static_cast<uint32_t>(pos);
      }
      if (p != end)
        return absl::InvalidArgumentError(absl::StrCat(
            name, ": ", end - p, " trailing bytes after ", n, " varint indices"));
      break;
    }
    case kEncBitmap: {
      idx.reserve(n);
      for (size_t byte = 0; byte < sec_bytes; ++byte) {
        unsigned v = static_cast<uint8_t>(sec[byte]);
        while (v != 0) {
          const size_t i = byte * 8 + static_cast<size_t>(__builtin_ctz(v));
          v &= v - 1;
          if (i >= c_.d)
            return absl::InvalidArgumentError(absl::StrCat(name, ": bitmap padding bit ", i,
                                                           " is set (d = ", c_.d, ")"));
          if (idx.size() == n)
            return absl::InvalidArgumentError(
                absl::StrCat(name, ": bitmap has more than the ", n, " indices announced"));
          idx.push_back(static_cast<uint32_t>(i));
        }
      }
      if (idx.size() != n)
        return absl::InvalidArgumentError(absl::StrCat(name, ": bitmap has ", idx.size(),
                                                       " indices; header says ", n));
      break;
    }
    case kEncSeed:
      SampleRandK(LoadLE<uint64_t>(sec), c_.d, c_.k, &idx);
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(name, ": bad index encoding"));
  }
  for (size_t j = 0; j < n; ++j) {
    if (idx[j] >= c_.d)
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": index ", idx[j], " (entry ", j, ") is out of range [0, ", c_.d, ")"));
    if (j > 0 && idx[j] <= idx[j - 1])
      return absl::InvalidArgumentError(absl::StrCat(
          name, ": indices not strictly increasing at entry ", j, " (", idx[j - 1], ", ",
          idx[j], ")"));
  }
  if (c_.value_type == kF64) return DecodeValues<double, T>(values, idx, out);
  return DecodeValues<float, T>(values, idx, out);
}

}  // namespace

std::unique_ptr<Compressor> NewSparseCompressor(const SparseConfig& c) {
  return std::unique_ptr<Compressor>(new SparseCompressor(c));
}

}  // namespace compression_internal
}  // namespace fedtrain
