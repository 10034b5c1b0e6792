#include "runtime/model_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/metrics.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fedtrain {
namespace {
constexpr char kMagic[8] = {'F', 'T', 'M', 'O', 'D', 'E', 'L', '1'};

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model.ftw stores little-endian float32; this writer assumes a little-endian host"
#endif
}  // namespace

absl::Status SaveModel(const std::string& path, const std::string& model_desc,
                       const ParamLayout& layout, uint64_t round, ConstVec weights) {
  const std::string header = absl::StrCat(
      "{\"format\":1,\"model\":", JsonQuote(model_desc), ",\"dtype\":\"float32\",\"dim\":",
      weights.size(), ",\"round\":", round, ",\"fnv1a64\":\"",
      absl::StrFormat("%016x", HashFloats(weights)), "\",\"layout\":", layout.ToJson(), "}");
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return absl::InternalError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  const uint32_t h = static_cast<uint32_t>(header.size());
  const unsigned char hl[4] = {static_cast<unsigned char>(h), static_cast<unsigned char>(h >> 8),
                               static_cast<unsigned char>(h >> 16), static_cast<unsigned char>(h >> 24)};
  bool ok = std::fwrite(kMagic, 1, 8, f) == 8 && std::fwrite(hl, 1, 4, f) == 4 &&
            std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
            std::fwrite(weights.data(), sizeof(float), weights.size(), f) == weights.size();
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrCat("writing ", path, " failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<SavedModel> LoadModel(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  auto bad = [&](const std::string& why) {
    return absl::DataLossError(absl::StrCat(path, ": not a valid fedtrain model: ", why));
  };
  if (bytes.size() < 12 || std::memcmp(bytes.data(), kMagic, 8) != 0) return bad("bad magic");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(bytes.data()) + 8;
  const uint32_t h = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
  if (bytes.size() < 12 + static_cast<size_t>(h)) return bad("truncated header");
  SavedModel m;
  m.header_json = bytes.substr(12, h);
  // The header is JSON; protobuf's parser reads it into a Struct (numbers as doubles: dim
  // and round are far below 2^53).
  google::protobuf::Struct header;
  if (!google::protobuf::util::JsonStringToMessage(m.header_json, &header).ok())
    return bad("header is not JSON");
  const auto& f = header.fields();
  auto num = [&](const char* k) { return f.count(k) ? f.at(k).number_value() : -1.0; };
  if (!f.count("model") || num("dim") < 0 || num("round") < 0 || !f.count("fnv1a64"))
    return bad("header lacks model, dim, round or fnv1a64");
  m.model = f.at("model").string_value();
  const uint64_t dim = static_cast<uint64_t>(num("dim"));
  m.round = static_cast<uint64_t>(num("round"));
  uint64_t hash = 0;
  if (!absl::SimpleHexAtoi(f.at("fnv1a64").string_value(), &hash)) return bad("bad fnv1a64");
  const size_t body = bytes.size() - 12 - h;
  if (body != dim * sizeof(float))
    return bad(absl::StrCat("header says ", dim, " floats, file holds ", body, " bytes"));
  m.weights.resize(dim);
  if (body > 0) std::memcpy(m.weights.data(), bytes.data() + 12 + h, body);  // data() may be null
  if (HashFloats(m.weights) != hash) return bad("weights do not match their checksum");
  return m;
}

}  // namespace fedtrain
