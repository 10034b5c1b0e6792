#include "runtime/tensorboard.h"

#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace fedtrain {
namespace {

// The reflected CRC-32C table (polynomial 0x82F63B78), one entry per byte value.
std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1u) ? 0x82F63B78u : 0u);
    t[i] = c;
  }
  return t;
}

void PutLe(uint64_t v, int bytes, std::string* out) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLe(absl::string_view b, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(b[i])) << (8 * i);
  return v;
}

double Seconds() { return absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()); }

}  // namespace

uint32_t Crc32c(absl::string_view data) {
  static const std::array<uint32_t, 256> table = MakeCrcTable();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t MaskCrc(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

std::string TfRecord(absl::string_view data) {
  std::string out, len;
  PutLe(data.size(), 8, &len);
  out += len;
  PutLe(MaskCrc(Crc32c(len)), 4, &out);
  out.append(data.data(), data.size());
  PutLe(MaskCrc(Crc32c(data)), 4, &out);
  return out;
}

absl::StatusOr<std::vector<std::string>> ReadTfRecords(absl::string_view bytes) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at < bytes.size()) {
    const size_t n = out.size();
    if (bytes.size() - at < 12)
      return absl::DataLossError(absl::StrCat("record ", n, ": truncated header"));
    const absl::string_view len = bytes.substr(at, 8);
    if (GetLe(bytes.substr(at + 8, 4), 4) != MaskCrc(Crc32c(len)))
      return absl::DataLossError(absl::StrCat("record ", n, ": length checksum mismatch"));
    const uint64_t size = GetLe(len, 8);
    if (size > bytes.size() - at - 12 || bytes.size() - at - 12 - size < 4)
      return absl::DataLossError(absl::StrCat("record ", n, ": truncated data"));
    const absl::string_view data = bytes.substr(at + 12, size);
    if (GetLe(bytes.substr(at + 12 + size, 4), 4) != MaskCrc(Crc32c(data)))
      return absl::DataLossError(absl::StrCat("record ", n, ": data checksum mismatch"));
    out.emplace_back(data);
    at += 12 + size + 4;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<TensorBoardSink>> TensorBoardSink::Open(const std::string& dir,
                                                                       MetricsSink* next) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  const std::string path = absl::StrCat(
      dir, "/events.out.tfevents.", absl::ToUnixSeconds(absl::Now()), ".fedtrain");
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (f == nullptr)
    return absl::InternalError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  std::unique_ptr<TensorBoardSink> sink(new TensorBoardSink(f, path, next));
  v1::TbEvent first;
  first.set_wall_time(Seconds());
  first.set_file_version("brain.Event:2");
  if (absl::Status s = sink->Append(first); !s.ok()) return s;
  return sink;
}

TensorBoardSink::~TensorBoardSink() { std::fclose(f_); }

absl::Status TensorBoardSink::Append(const v1::TbEvent& e) {
  const std::string rec = TfRecord(e.SerializeAsString());
  if (std::fwrite(rec.data(), 1, rec.size(), f_) != rec.size() || std::fflush(f_) != 0)
    return absl::InternalError(absl::StrCat("cannot write ", path_));
  return absl::OkStatus();
}

absl::Status TensorBoardSink::Write(const MetricsRow& row) {
  auto number = [&row](const char* key, double* out) {
    const MetricsRow::Value* v = row.Get(key);
    if (v == nullptr) return false;
    if (const double* d = std::get_if<double>(v)) {
      *out = *d;
    } else if (const int64_t* i = std::get_if<int64_t>(v)) {
      *out = static_cast<double>(*i);
    } else {
      return false;
    }
    return std::isfinite(*out);
  };
  double round = 0;
  if (number("round", &round)) {
    v1::TbEvent e;
    e.set_wall_time(Seconds());
    e.set_step(static_cast<int64_t>(round));
    for (const TbScalar& s : kTbScalars) {
      double v = 0;
      if (!number(s.column, &v)) continue;
      v1::TbSummaryValue* out = e.mutable_summary()->add_value();
      out->set_tag(s.tag);
      out->set_simple_value(static_cast<float>(v));
    }
    if (absl::Status s = Append(e); !s.ok()) return s;
  }
  return next_ != nullptr ? next_->Write(row) : absl::OkStatus();
}

}  // namespace fedtrain
