// Metrics sinks: one row per round, written as JSON Lines and as CSV. A row is an ordered
// list of named values; the CSV header comes from the first row and later rows must have the
// same keys (FT_CHECK: a mismatch is our bug). Not thread-safe: the round loop owns it.
#ifndef FEDTRAIN_CORE_METRICS_H_
#define FEDTRAIN_CORE_METRICS_H_

#include <cstddef>
#include <cstdio>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fedtrain {

// A model's quality on a data set (Trainer::Evaluate, the Coordinator's evaluation rounds).
struct EvalMetrics {
  double loss = 0.0;      // mean cross-entropy
  double accuracy = 0.0;  // fraction in [0, 1]
  size_t count = 0;       // samples evaluated
};

class MetricsRow {
 public:
  using Value = std::variant<double, int64_t, std::string>;
  MetricsRow& Set(std::string key, double v) { return Put(std::move(key), v); }
  MetricsRow& Set(std::string key, int64_t v) { return Put(std::move(key), v); }
  MetricsRow& Set(std::string key, std::string v) { return Put(std::move(key), std::move(v)); }
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  // Null when absent.
  const Value* Get(const std::string& key) const;
  std::string ToJson() const;

 private:
  MetricsRow& Put(std::string key, Value v);
  std::vector<std::pair<std::string, Value>> items_;
};

class MetricsSink {
 public:
  virtual ~MetricsSink() = default;
  virtual absl::Status Write(const MetricsRow& row) = 0;
};

// Appends rows to <prefix>.jsonl and <prefix>.csv, flushing after each row so a crashed
// run keeps every finished round.
class FileMetricsSink final : public MetricsSink {
 public:
  static absl::StatusOr<std::unique_ptr<FileMetricsSink>> Open(const std::string& prefix);
  // Continues the files of a run resumed after `rows` rounds: keeps their first `rows` rows
  // (and the CSV header), drops later ones (rounds the resumed run does again), and appends.
  // DataLoss naming the file when it holds fewer than `rows` rows.
  static absl::StatusOr<std::unique_ptr<FileMetricsSink>> Resume(const std::string& prefix,
                                                                  int64_t rows);
  ~FileMetricsSink() override;
  absl::Status Write(const MetricsRow& row) override;

 private:
  FileMetricsSink(std::FILE* jsonl, std::FILE* csv) : jsonl_(jsonl), csv_(csv) {}
  std::FILE* jsonl_;
  std::FILE* csv_;
  std::vector<std::string> header_;
};

// Keeps rows in memory (tests, the progress display).
class MemoryMetricsSink final : public MetricsSink {
 public:
  absl::Status Write(const MetricsRow& row) override {
    rows.push_back(row);
    return absl::OkStatus();
  }
  std::vector<MetricsRow> rows;
};

// JSON string literal with escapes, including the quotes.
std::string JsonQuote(const std::string& s);
// Shortest decimal that round-trips a double; "null" for NaN/inf (JSON has neither).
std::string JsonNumber(double v);

}  // namespace fedtrain

#endif  // FEDTRAIN_CORE_METRICS_H_
