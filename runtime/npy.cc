#include "runtime/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

#include <zlib.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

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

// The bytes of the file at `path`; NotFound naming it when it cannot be opened.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return absl::NotFoundError(absl::StrCat(path, ": cannot open for reading"));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The item size of a supported numeric dtype, 0 for any other.
size_t ItemSize(const std::string& d) {
  if (d.size() != 3 || (d[0] != '<' && d[0] != '|' && d[0] != '=')) return 0;
  const char kind = d[1];
  const int bytes = d[2] - '0';
  if (kind == 'b' && bytes == 1) return 1;
  if ((kind == 'i' || kind == 'u') && (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8))
    return static_cast<size_t>(bytes);
  if (kind == 'f' && (bytes == 4 || bytes == 8)) return static_cast<size_t>(bytes);
  return 0;
}


// The header of a .npy file: the array's shape and dtype into *a (its bytes left empty), and
// where the data start.
absl::Status ParseNpyHeader(const std::string& bytes, const std::string& name, NpyArray* a,
                            size_t* data_pos) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    return Bad(name, "not a .npy file (the magic string \\x93NUMPY is missing)");
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, pos;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    pos = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return Bad(name, "truncated .npy header");
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
  a->dtype = std::string(absl::StripPrefix(absl::StripSuffix(descr, "'"), "'"));
  if (ItemSize(a->dtype) == 0)
    return Bad(name, absl::StrCat("dtype '", a->dtype, "' is not supported: use a little-endian "
                                  "bool, integer or float32/float64 array"));
  if (order != "False")
    return Bad(name, "the array is in Fortran order; save it in C order (np.ascontiguousarray)");
  std::string dims(absl::StripSuffix(absl::StripPrefix(shape, "("), ")"));
  size_t count = 1;
  for (absl::string_view d : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    uint64_t v;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(d), &v))
      return Bad(name, absl::StrCat("unreadable shape ", shape));
    if (v != 0 && count > (uint64_t{1} << 40) / v) return Bad(name, absl::StrCat("shape ", shape, " is too large"));
    count *= v;
    a->shape.push_back(v);
  }
  *data_pos = pos;
  return absl::OkStatus();
}

// The data after the header: exactly the shape's bytes.
absl::Status CheckNpyData(const std::string& bytes, const std::string& name, const NpyArray& a,
                          size_t pos) {
  const std::string shape = absl::StrCat("(", absl::StrJoin(a.shape, ","), ")");
  const size_t need = a.size() * ItemSize(a.dtype);
  if (bytes.size() - pos < need)
    return Bad(name, absl::StrCat("truncated: shape ", shape, " needs ", need,
                                  " data bytes, the file has ", bytes.size() - pos));
  if (bytes.size() - pos > need)
    return Bad(name, absl::StrCat("has ", bytes.size() - pos - need, " bytes after the ", need,
                                  " data bytes of shape ", shape));
  return absl::OkStatus();
}

}  // namespace

size_t NpyArray::size() const {
  size_t n = 1;
  for (size_t e : shape) n *= e;
  return n;
}

absl::StatusOr<NpyArray> ParseNpyArray(std::string bytes, const std::string& name) {
  NpyArray a;
  size_t pos = 0;
  FT_RETURN_IF_ERROR(ParseNpyHeader(bytes, name, &a, &pos));
  if (a.shape.empty()) return Bad(name, "is a scalar; a data set needs an array of rows");
  FT_RETURN_IF_ERROR(CheckNpyData(bytes, name, a, pos));
  bytes.erase(0, pos);
  a.bytes = std::move(bytes);
  return a;
}

absl::StatusOr<NpyArray> ReadNpyArray(const std::string& path) {
  FT_ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(path));
  return ParseNpyArray(std::move(bytes), path);
}

namespace {

uint32_t Le(const std::string& b, size_t at, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
  return v;
}

// Raw deflate (no zlib header), as ZIP's method 8 stores it, into exactly `size` bytes.
absl::StatusOr<std::string> Inflate(const char* data, size_t n, size_t size,
                                    const std::string& what) {
  std::string out(size, '\0');
  z_stream zs{};
  if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) return absl::InternalError("zlib inflateInit2 failed");
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
  zs.avail_in = static_cast<uInt>(n);
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(size);
  const int rc = inflate(&zs, Z_FINISH);
  const size_t got = zs.total_out;
  inflateEnd(&zs);
  if (rc != Z_STREAM_END || got != size)
    return absl::InvalidArgumentError(absl::StrCat(what, ": damaged deflate data"));
  return out;
}

}  // namespace

absl::StatusOr<NpyArray> ReadNpzArray(const std::string& path, const std::string& array) {
  FT_ASSIGN_OR_RETURN(const std::string z, ReadWholeFile(path));
  // The end-of-central-directory record: 22 bytes plus a comment of at most 65535.
  size_t eocd = std::string::npos;
  if (z.size() >= 22) {
    const size_t lowest = z.size() > 22 + 65535 ? z.size() - 22 - 65535 : 0;
    for (size_t i = z.size() - 22 + 1; i-- > lowest;)
      if (Le(z, i, 4) == 0x06054b50) {
        eocd = i;
        break;
      }
  }
  if (eocd == std::string::npos) return Bad(path, "not a .npz (zip) archive: no end of central directory");
  const uint32_t entries = Le(z, eocd + 10, 2), cd_offset = Le(z, eocd + 16, 4);
  if (cd_offset == 0xffffffffu || entries == 0xffffu)
    return Bad(path, "is a ZIP64 archive (an array over 4 GiB), which fedtrain does not read");
  const std::string want = array + ".npy";
  std::vector<std::string> names;
  size_t at = cd_offset;
  for (uint32_t e = 0; e < entries; ++e) {
    if (at + 46 > z.size() || Le(z, at, 4) != 0x02014b50) return Bad(path, "damaged central directory");
    const uint32_t method = Le(z, at + 10, 2), crc = Le(z, at + 16, 4), csize = Le(z, at + 20, 4),
                   usize = Le(z, at + 24, 4);
    const uint32_t name_len = Le(z, at + 28, 2), extra_len = Le(z, at + 30, 2),
                   comment_len = Le(z, at + 32, 2), local = Le(z, at + 42, 4);
    if (at + 46 + name_len > z.size()) return Bad(path, "damaged central directory");
    const std::string name = z.substr(at + 46, name_len);
    at += 46 + name_len + extra_len + comment_len;
    names.push_back(name.size() > 4 && name.compare(name.size() - 4, 4, ".npy") == 0
                        ? name.substr(0, name.size() - 4) : name);
    if (name != want) continue;
    if (csize == 0xffffffffu || usize == 0xffffffffu || local == 0xffffffffu)
      return Bad(path, "is a ZIP64 archive (an array over 4 GiB), which fedtrain does not read");
    if (local + 30 > z.size() || Le(z, local, 4) != 0x04034b50) return Bad(path, "damaged local header of " + name);
    const size_t data = local + 30 + Le(z, local + 26, 2) + Le(z, local + 28, 2);
    if (data + csize > z.size()) return Bad(path, "truncated member " + name);
    const std::string what = absl::StrCat(path, ":", name);
    std::string raw;
    if (method == 0) {
      if (csize != usize) return Bad(path, "damaged member sizes of " + name);
      raw = z.substr(data, csize);
    } else if (method == 8) {
      FT_ASSIGN_OR_RETURN(raw, Inflate(z.data() + data, csize, usize, what));
    } else {
      return Bad(path, absl::StrCat("member ", name, " uses compression method ", method,
                                    "; numpy.savez (stored) and savez_compressed (deflate) are read"));
    }
    if (crc32(0L, reinterpret_cast<const Bytef*>(raw.data()), static_cast<uInt>(raw.size())) != crc)
      return Bad(path, absl::StrCat("member ", name, " fails its CRC-32 check (damaged archive)"));
    return ParseNpyArray(std::move(raw), what);
  }
  return Bad(path, absl::StrCat("has no array '", array, "'; its arrays are: ",
                                absl::StrJoin(names, ", ")));
}

double NpyElement(const NpyArray& a, size_t k) {
  const char kind = a.dtype[1];
  const size_t item = ItemSize(a.dtype);
  const char* p = a.bytes.data() + k * item;
  auto get = [p](auto v) {
    std::memcpy(&v, p, sizeof v);
    return static_cast<double>(v);
  };
  if (kind == 'f') return item == 4 ? get(float{}) : get(double{});
  if (kind == 'b') return p[0] != 0 ? 1.0 : 0.0;
  if (kind == 'i') {
    switch (item) {
      case 1: return get(int8_t{});
      case 2: return get(int16_t{});
      case 4: return get(int32_t{});
      default: return get(int64_t{});
    }
  }
  switch (item) {
    case 1: return get(uint8_t{});
    case 2: return get(uint16_t{});
    case 4: return get(uint32_t{});
    default: return get(uint64_t{});
  }
}

std::string NpyArrayBytes(const std::string& descr, const std::vector<size_t>& shape,
                          const std::string& raw) {
  std::string dims;
  for (size_t e : shape) absl::StrAppend(&dims, e, ", ");
  std::string out = Header(absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (",
                                        dims, "), }"));
  return out + raw;
}

absl::StatusOr<NpyMatrix> ParseNpyMatrix(const std::string& bytes, const std::string& name) {
  NpyArray a;
  size_t pos = 0;
  FT_RETURN_IF_ERROR(ParseNpyHeader(bytes, name, &a, &pos));
  const std::string& d = a.dtype;
  if (d != "<f4" && d != "=f4" && d != "|f4" && d != "<f8" && d != "=f8" && d != "|f8")
    return Bad(name, absl::StrCat("dtype '", d,
                                  "' is not supported: use little-endian float32 ('<f4') or "
                                  "float64 ('<f8')"));
  const std::string shape = absl::StrCat("(", absl::StrJoin(a.shape, ", "), ")");
  if (a.shape.size() != 2)
    return Bad(name, absl::StrCat("shape ", shape, " is not 2-D: expected (p, n), one input vector "
                                  "per row"));
  if (a.shape[0] == 0 || a.shape[1] == 0) return Bad(name, absl::StrCat("shape ", shape, " is empty"));
  FT_RETURN_IF_ERROR(CheckNpyData(bytes, name, a, pos));
  const char* data = bytes.data() + pos;
  NpyMatrix m;
  m.rows = a.shape[0];
  m.cols = a.shape[1];
  m.dtype = d[2] == '4' ? "<f4" : "<f8";
  const size_t count = m.rows * m.cols;
  m.data.resize(count);
  if (d[2] == '4') {
    std::memcpy(m.data.data(), data, count * sizeof(float));
  } else {
    for (size_t k = 0; k < count; ++k) {
      double v;
      std::memcpy(&v, data + 8 * k, 8);
      m.data[k] = static_cast<float>(v);
      if (static_cast<double>(m.data[k]) != v && v == v) m.lossless = false;
    }
  }
  return m;
}

absl::StatusOr<NpyMatrix> ReadNpyMatrix(const std::string& path) {
  FT_ASSIGN_OR_RETURN(const std::string bytes, ReadWholeFile(path));
  return ParseNpyMatrix(bytes, path);
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
