// Bit and byte packing for the compressor codecs (docs/compression.md §1.7): little-endian
// multi-byte values, bit fields least significant bit first inside each byte, fields laid end
// to end with padding only at the end of a message, and LEB128 varints.
//
// Pure and thread-compatible. Writers append to a caller-owned std::string; readers borrow a
// byte range and never read outside it: every read reports running past the end instead
// (decoders feed them untrusted bytes).
#ifndef FEDTRAIN_COMPRESSION_BIT_IO_H_
#define FEDTRAIN_COMPRESSION_BIT_IO_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace fedtrain {

// Little-endian fixed-width stores and loads (the host is little-endian: compressor.cc).
template <typename T>
inline void StoreLE(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
inline T LoadLE(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}
template <typename T>
inline void AppendLE(std::string* s, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  s->append(buf, sizeof(T));
}

// Appends bit fields (up to 32 bits each) LSB first; Finish() flushes the last partial byte,
// zero-padded.
class BitWriter {
 public:
  explicit BitWriter(std::string* out) : out_(out) {}
  // Writes the low `nbits` (0..32) bits of `v`; higher bits of `v` must be zero.
  void Put(uint32_t v, int nbits) {
    acc_ |= static_cast<uint64_t>(v) << fill_;
    fill_ += nbits;
    while (fill_ >= 8) {
      out_->push_back(static_cast<char>(acc_ & 0xff));
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  void Finish() {
    if (fill_ > 0) out_->push_back(static_cast<char>(acc_ & 0xff));
    acc_ = 0;
    fill_ = 0;
  }

 private:
  std::string* out_;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

// Reads bit fields LSB first from [data, data + size); never reads outside it.
class BitReader {
 public:
  BitReader(const char* data, size_t size) : data_(data), size_(size) {}
  // Reads `nbits` (0..32) bits into *v; false (and *v unspecified) past the end.
  bool Get(int nbits, uint32_t* v) {
    uint64_t r = 0;
    for (int got = 0; got < nbits;) {
      const size_t byte = pos_ >> 3;
      if (byte >= size_) return false;
      const int off = static_cast<int>(pos_ & 7);
      const int take = (8 - off) < (nbits - got) ? (8 - off) : (nbits - got);
      const uint64_t bits =
          (static_cast<uint64_t>(static_cast<uint8_t>(data_[byte])) >> off) & ((1u << take) - 1);
      r |= bits << got;
      got += take;
      pos_ += take;
    }
    *v = static_cast<uint32_t>(r);
    return true;
  }
  size_t bit_position() const { return pos_; }
  // True when every bit from the current position to the end of the range is zero (the
  // end-of-message padding of a canonical encoding).
  bool RestIsZero() const;

 private:
  const char* data_;
  size_t size_;
  size_t pos_ = 0;
};

// LEB128: 7 bits per byte, low group first, high bit set on all but the last byte.
void PutVarint32(std::string* out, uint32_t v);
// Reads one varint of at most 5 bytes whose value fits 32 bits from [*p, end); advances *p.
// False on truncation, overlong (> 5 bytes) or too large values.
bool GetVarint32(const char** p, const char* end, uint32_t* v);
// Bytes PutVarint32 writes for v (1..5).
inline int Varint32Size(uint32_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

namespace bit_io_internal {

// Eight codes of W <= 8 bits fill exactly W bytes: no carry between groups. A fixed W lets
// the compiler turn the shifts and the W-byte copy into straight-line (or vector) code.
template <int W>
inline size_t PackGroups(const uint32_t* codes, size_t n, char* p) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8, p += W) {
    uint64_t g = 0;
    for (int j = 0; j < 8; ++j) g |= static_cast<uint64_t>(codes[i + j]) << (j * W);
    std::memcpy(p, &g, W);
  }
  return i;
}

// The W (1..8) bytes at p, little-endian, assembled in a register from whole loads (a
// memcpy into a zeroed stack word makes the next load wait on a store-forwarding stall).
template <int W>
inline uint64_t LoadBytes(const char* p) {
  uint64_t g = 0;
  if constexpr (W == 8) {
    std::memcpy(&g, p, 8);
  } else {
    int off = 0;
    if constexpr (W >= 4) {
      uint32_t v;
      std::memcpy(&v, p, 4);
      g = v;
      off = 4;
    }
    if constexpr (W % 4 >= 2) {
      uint16_t v;
      std::memcpy(&v, p + off, 2);
      g |= static_cast<uint64_t>(v) << (8 * off);
      off += 2;
    }
    if constexpr (W % 2 == 1) g |= static_cast<uint64_t>(static_cast<uint8_t>(p[off])) << (8 * off);
  }
  return g;
}

template <int W>
inline size_t UnpackGroups(const char* p, size_t n, uint32_t* codes) {
  constexpr uint64_t kMask = (uint64_t{1} << W) - 1;
  size_t i = 0;
  for (; i + 8 <= n; i += 8, p += W) {
    const uint64_t g = LoadBytes<W>(p);
    for (int j = 0; j < 8; ++j) codes[i + j] = static_cast<uint32_t>((g >> (j * W)) & kMask);
  }
  return i;
}

}  // namespace bit_io_internal

// Packs n codes of `width` bits (1..32) LSB first at `dst`, which must hold
// ceil(n * width / 8) bytes (every one is overwritten); the unused high bits of the last
// byte are zero. Header-only so that SIMD-compiled kernels inline it.
inline void PackBits(const uint32_t* codes, size_t n, int width, char* dst) {
  using namespace bit_io_internal;  // NOLINT
  size_t i = 0;
  switch (width) {
    case 1: i = PackGroups<1>(codes, n, dst); break;
    case 2: i = PackGroups<2>(codes, n, dst); break;
    case 3: i = PackGroups<3>(codes, n, dst); break;
    case 4: i = PackGroups<4>(codes, n, dst); break;
    case 5: i = PackGroups<5>(codes, n, dst); break;
    case 6: i = PackGroups<6>(codes, n, dst); break;
    case 7: i = PackGroups<7>(codes, n, dst); break;
    case 8: i = PackGroups<8>(codes, n, dst); break;
    default: break;
  }
  char* p = dst + i / 8 * static_cast<size_t>(width);
  // General path (wide codes and the tail): a 64-bit accumulator, flushed by whole bytes.
  uint64_t acc = 0;
  int fill = 0;
  for (; i < n; ++i) {
    acc |= static_cast<uint64_t>(codes[i]) << fill;
    fill += width;
    while (fill >= 8) {
      *p++ = static_cast<char>(acc & 0xff);
      acc >>= 8;
      fill -= 8;
    }
  }
  if (fill > 0) *p = static_cast<char>(acc & 0xff);
}

// The inverse of PackBits: reads n codes of `width` bits from `src`, which holds exactly
// ceil(n * width / 8) readable bytes (never reads past them).
inline void UnpackBits(const char* src, size_t n, int width, uint32_t* codes) {
  using namespace bit_io_internal;  // NOLINT
  size_t i = 0;
  switch (width) {
    case 1: i = UnpackGroups<1>(src, n, codes); break;
    case 2: i = UnpackGroups<2>(src, n, codes); break;
    case 3: i = UnpackGroups<3>(src, n, codes); break;
    case 4: i = UnpackGroups<4>(src, n, codes); break;
    case 5: i = UnpackGroups<5>(src, n, codes); break;
    case 6: i = UnpackGroups<6>(src, n, codes); break;
    case 7: i = UnpackGroups<7>(src, n, codes); break;
    case 8: i = UnpackGroups<8>(src, n, codes); break;
    default: break;
  }
  const char* p = src + i / 8 * static_cast<size_t>(width);
  const uint64_t mask = (uint64_t{1} << width) - 1;
  uint64_t acc = 0;
  int fill = 0;
  for (; i < n; ++i) {
    while (fill < width) {
      acc |= static_cast<uint64_t>(static_cast<uint8_t>(*p++)) << fill;
      fill += 8;
    }
    codes[i] = static_cast<uint32_t>(acc & mask);
    acc >>= width;
    fill -= width;
  }
}

// ceil(log2(n)) for n >= 1 (0 for n = 1): index bits for a vector of length n.
inline int CeilLog2(uint64_t n) {
  int b = 0;
  while (b < 64 && (uint64_t{1} << b) < n) ++b;
  return b;
}

}  // namespace fedtrain

#endif  // FEDTRAIN_COMPRESSION_BIT_IO_H_
