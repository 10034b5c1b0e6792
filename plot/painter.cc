// UTF-8 clean-up of label text for cairo (painter.h).
#include "plot/painter.h"

#include <cstdint>

namespace fedtrain {
namespace plot_internal {

std::string SanitizeUtf8(absl::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = s[i];
    int len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const unsigned char cc = s[i + k];
      ok = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMinForLength[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && cp >= kMinForLength[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF) &&
         (cp >= 0x20 || len > 1);  // Control characters draw as boxes at best.
    if (ok) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += '?';
      i += 1;
    }
  }
  return out;
}

}  // namespace plot_internal
}  // namespace fedtrain
