#include "core/metrics.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
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
  // The shortest text that reads back as the same double (0.05, not 0.050000000000000003).
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

namespace {
std::string ValueText(const MetricsRow::Value& v, bool json) {
  if (const double* d = std::get_if<double>(&v)) return json ? JsonNumber(*d) : absl::StrFormat("%.9g", *d);
  if (const int64_t* i = std::get_if<int64_t>(&v)) return absl::StrCat(*i);
  const std::string& s = std::get<std::string>(v);
  if (json) return JsonQuote(s);
  // CSV (RFC 4180): a text holding a comma, a quote or a line break goes in quotes, with
  // its quotes doubled (a reducer's JSON diagnostics, for instance).
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\"", "\"\""}}), "\"");
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

absl::StatusOr<std::unique_ptr<FileMetricsSink>> FileMetricsSink::Resume(const std::string& prefix,
                                                                          int64_t rows) {
  // Read and check both files before rewriting either: a refused resume changes nothing.
  std::vector<std::string> header;
  std::string kept[2];
  const char* exts[2] = {".jsonl", ".csv"};
  for (int f = 0; f < 2; ++f) {
    const std::string path = prefix + exts[f];
    const bool csv = f == 1;
    std::ifstream in(path);
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
    std::string line;
    int64_t n = 0;
    const int64_t want = rows + (csv && rows > 0 ? 1 : 0);
    while (n < want && std::getline(in, line)) {
      if (csv && n == 0) header = absl::StrSplit(line, ',');
      absl::StrAppend(&kept[f], line, "\n");
      ++n;
    }
    if (n < want)
      return absl::DataLossError(absl::StrCat(path, " holds ", csv ? std::max<int64_t>(n - 1, 0) : n,
                                              " rows; the checkpoint is after ", rows, " rounds"));
  }
  for (int f = 0; f < 2; ++f) {
    const std::string path = prefix + exts[f];
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << kept[f];
      out.close();
      if (!out) return absl::InternalError(absl::StrCat("cannot write ", tmp));
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      return absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", std::strerror(errno)));
  }
  std::FILE* j = std::fopen((prefix + ".jsonl").c_str(), "a");
  if (!j) return absl::InternalError(absl::StrCat("cannot append to ", prefix, ".jsonl: ", std::strerror(errno)));
  std::FILE* c = std::fopen((prefix + ".csv").c_str(), "a");
  if (!c) {
    std::fclose(j);
    return absl::InternalError(absl::StrCat("cannot append to ", prefix, ".csv: ", std::strerror(errno)));
  }
  std::unique_ptr<FileMetricsSink> sink(new FileMetricsSink(j, c));
  sink->header_ = std::move(header);
  return sink;
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
