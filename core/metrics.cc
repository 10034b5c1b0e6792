#include "core/metrics.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status_macros.h"

namespace fedtrain {

MetricsRow& MetricsRow::Put(std::string key, Value v) {
  for (auto& kv : items_) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return *this;
    }
  }
  items_.emplace_back(std::move(key), std::move(v));
  return *this;
}

const MetricsRow::Value* MetricsRow::Get(const std::string& key) const {
  for (const auto& kv : items_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

std::string JsonQuote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double v) {
  if (!std::isfinite(v)) return "null";
  return absl::StrFormat("%.17g", v);
}

namespace {
std::string ValueText(const MetricsRow::Value& v, bool json) {
  if (const double* d = std::get_if<double>(&v)) return json ? JsonNumber(*d) : absl::StrFormat("%.9g", *d);
  if (const int64_t* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  const std::string& s = std::get<std::string>(v);
  return json ? JsonQuote(s) : s;
}
}  // namespace

std::string MetricsRow::ToJson() const {
  std::string out = "{";
  for (size_t i = 0; i < items_.size(); ++i)
    absl::StrAppend(&out, i ? "," : "", JsonQuote(items_[i].first), ":",
                    ValueText(items_[i].second, true));
  return out + "}";
}

absl::StatusOr<std::unique_ptr<FileMetricsSink>> FileMetricsSink::Open(const std::string& prefix) {
  std::FILE* j = std::fopen((prefix + ".jsonl").c_str(), "w");
  if (!j) return absl::InternalError(absl::StrCat("cannot write ", prefix, ".jsonl: ", std::strerror(errno)));
  std::FILE* c = std::fopen((prefix + ".csv").c_str(), "w");
  if (!c) {
    std::fclose(j);
    return absl::InternalError(absl::StrCat("cannot write ", prefix, ".csv: ", std::strerror(errno)));
  }
  return std::unique_ptr<FileMetricsSink>(new FileMetricsSink(j, c));
}

FileMetricsSink::~FileMetricsSink() {
  std::fclose(jsonl_);
  std::fclose(csv_);
}

absl::Status FileMetricsSink::Write(const MetricsRow& row) {
  if (header_.empty()) {
    std::string line;
    for (const auto& kv : row.items()) {
      header_.push_back(kv.first);
      absl::StrAppend(&line, line.empty() ? "" : ",", kv.first);
    }
    std::fprintf(csv_, "%s\n", line.c_str());
  }
  FT_CHECK(row.items().size() == header_.size());
  std::string line;
  for (size_t i = 0; i < header_.size(); ++i) {
    FT_CHECK(row.items()[i].first == header_[i]);
    absl::StrAppend(&line, i ? "," : "", ValueText(row.items()[i].second, false));
  }
  std::fprintf(csv_, "%s\n", line.c_str());
  std::fprintf(jsonl_, "%s\n", row.ToJson().c_str());
  if (std::fflush(csv_) != 0 || std::fflush(jsonl_) != 0)
    return absl::InternalError(absl::StrCat("writing metrics failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

}  // namespace fedtrain
