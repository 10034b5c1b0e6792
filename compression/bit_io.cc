#include "compression/bit_io.h"

namespace fedtrain {

bool BitReader::RestIsZero() const {
  size_t byte = pos_ >> 3;
  if (byte >= size_) return true;
  const int off = static_cast<int>(pos_ & 7);
  if ((static_cast<uint8_t>(data_[byte]) >> off) != 0) return false;
  for (++byte; byte < size_; ++byte)
    if (data_[byte] != 0) return false;
  return true;
}

void PutVarint32(std::string* out, uint32_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint32(const char** p, const char* end, uint32_t* v) {
  uint64_t r = 0;
  const char* q = *p;
  for (int i = 0; i < 5; ++i) {
    if (q == end) return false;
    const uint8_t b = static_cast<uint8_t>(*q++);
    r |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
    if ((b & 0x80) == 0) {
      if (r > UINT32_MAX) return false;
      *v = static_cast<uint32_t>(r);
      *p = q;
      return true;
    }
  }
  return false;  // more than 5 bytes
}

}  // namespace fedtrain
