#include "runtime/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace fedtrain {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

absl::Status Bad(const std::string& name, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

// The value of 'key' in the header's Python dict literal, as raw text.
bool Field(const std::string& header, const std::string& key, std::string* value) {
  const std::string k = "'" + key + "'";
  size_t at = header.find(k);
  if (at == std::string::npos) return false;
  at = header.find(':', at + k.size());
  if (at == std::string::npos) return false;
  ++at;
  while (at < header.size() && header[at] == ' ') ++at;
  size_t end = at;
  if (at < header.size() && header[at] == '(') {
    end = header.find(')', at);
    if (end == std::string::npos) return false;
    ++end;
  } else if (at < header.size() && header[at] == '\'') {
    end = header.find('\'', at + 1);
    if (end == std::string::npos) return false;
    ++end;
  } else {
    while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  }
  *value = std::string(absl::StripAsciiWhitespace(header.substr(at, end - at)));
  return true;
}

std::string Header(const std::string& dict) {
  // Pad with spaces so that the data start at a multiple of 64, ending with '\n'.
  std::string h = dict;
  const size_t pre = 10;  // magic (6) + version (2) + header length (2)
  while ((pre + h.size() + 1) % 64 != 0) h += ' ';
  h += '\n';
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>((h.size() >> 8) & 0xff);
  return out + h;
}

}  // namespace

absl::StatusOr<NpyMatrix> ParseNpyMatrix(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    return Bad(name, "not a .npy file (the magic string \\x93NUMPY is missing)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, pos;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(name, "truncated .npy header");
    header_len = 0;
    for (int b = 3; b >= 0; --b) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + b]);
    pos = 12;
  } else {
    return Bad(name, absl::StrCat(".npy format version ", major, " is not supported (1, 2, 3 are)"));
  }
  if (bytes.size() < pos + header_len) return Bad(name, "truncated .npy header");
  const std::string header = bytes.substr(pos, header_len);
  pos += header_len;
  std::string descr, order, shape;
  if (!Field(header, "descr", &descr) || !Field(header, "fortran_order", &order) ||
      !Field(header, "shape", &shape))
    return Bad(name, absl::StrCat("unreadable .npy header '", header, "'"));
  descr = std::string(absl::StripPrefix(absl::StripSuffix(descr, "'"), "'"));
  NpyMatrix m;
  size_t item;
  if (descr == "<f4" || descr == "=f4" || descr == "|f4") {
    item = 4;
    m.dtype = "<f4";
  } else if (descr == "<f8" || descr == "=f8" || descr == "|f8") {
    item = 8;
    m.dtype = "<f8";
  } else {
    return Bad(name, absl::StrCat("dtype '", descr,
                                  "' is not supported: use little-endian float32 ('<f4') or "
                                  "float64 ('<f8')"));
  }
  if (order != "False")
    return Bad(name, "the array is in Fortran order; save it in C order (np.ascontiguousarray)");
  std::string dims(absl::StripSuffix(absl::StripPrefix(shape, "("), ")"));
  std::vector<size_t> ext;
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    uint64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &v))
      return Bad(name, absl::StrCat("unreadable shape ", shape));
    ext.push_back(v);
  }
  if (ext.size() != 2)
    return Bad(name, absl::StrCat("shape ", shape, " is not 2-D: expected (p, n), one input vector "
                                  "per row"));
  if (ext[0] == 0 || ext[1] == 0) return Bad(name, absl::StrCat("shape ", shape, " is empty"));
  m.rows = ext[0];
  m.cols = ext[1];
  const size_t count = m.rows * m.cols;
  if (m.cols != 0 && count / m.cols != m.rows) return Bad(name, "shape overflows");
  const size_t need = count * item;
  if (bytes.size() - pos < need)
    return Bad(name, absl::StrCat("truncated: shape ", shape, " needs ", need, " data bytes, the file has ",
                                  bytes.size() - pos));
  if (bytes.size() - pos > need)
    return Bad(name, absl::StrCat("has ", bytes.size() - pos - need, " bytes after the ", need,
                                  " data bytes of shape ", shape));
  m.data.resize(count);
  const char* p = bytes.data() + pos;
  if (item == 4) {
    std::memcpy(m.data.data(), p, need);
  } else {
    for (size_t k = 0; k < count; ++k) {
      double v;
      std::memcpy(&v, p + 8 * k, 8);
      m.data[k] = static_cast<float>(v);
      if (static_cast<double>(m.data[k]) != v && v == v) m.lossless = false;
    }
  }
  return m;
}

absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open for reading"));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ParseNpyMatrix(ss.str(), path);
}

std::string NpyVectorBytes(const std::vector<float>& v) {
  std::string out = Header(absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                        v.size(), ",), }"));
  out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  return out;
}

std::string NpyMatrixBytes(const std::vector<std::vector<float>>& rows) {
  const size_t n = rows.empty() ? 0 : rows[0].size();
  std::string out = Header(absl::StrCat("{'descr': '<f4', 'fortran_order': False, 'shape': (",
                                        rows.size(), ", ", n, "), }"));
  for (const auto& r : rows) out.append(reinterpret_cast<const char*>(r.data()), r.size() * sizeof(float));
  return out;
}

absl::Status WriteNpyVector(const std::string& path, const std::vector<float>& v) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) return absl::PermissionDeniedError(absl::StrCat(path, ": cannot open for writing"));
  const std::string bytes = NpyVectorBytes(v);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  f.close();
  if (!f) return absl::DataLossError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

}  // namespace fedtrain
