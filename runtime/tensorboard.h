// TensorBoard event files for a run's metrics (output.tensorboard). A file is a sequence of
// TFRecord records: an 8-byte little-endian length, a 4-byte masked CRC-32C of those 8
// bytes, the data, and a 4-byte masked CRC-32C of the data; the mask is
// ((crc >> 15) | (crc << 17)) + 0xa282ead8 (modulo 2^32), which TFRecord uses so that a CRC
// stored inside checksummed data does not weaken the outer check. Each record's data is one
// fedtrain.v1.TbEvent (proto/fedtrain/v1/tensorboard.proto): the first names the format,
// each later one holds one round's numeric metrics as scalars at step = the 1-based round.
// Not thread-safe: the round loop owns the sink.
#ifndef FEDTRAIN_RUNTIME_TENSORBOARD_H_
#define FEDTRAIN_RUNTIME_TENSORBOARD_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/metrics.h"
#include "fedtrain/v1/tensorboard.pb.h"

namespace fedtrain {

// CRC-32C (Castagnoli) of `data`, and TFRecord's mask of a CRC.
uint32_t Crc32c(absl::string_view data);
uint32_t MaskCrc(uint32_t crc);

// One TFRecord record around `data`.
std::string TfRecord(absl::string_view data);
// The data of every record in `bytes`; DataLoss naming the record whose length or either
// checksum is wrong, or a truncated tail.
absl::StatusOr<std::vector<std::string>> ReadTfRecords(absl::string_view bytes);

// The metric columns written as scalars, and their TensorBoard tags (a "/" groups them).
struct TbScalar {
  const char* column;
  const char* tag;
};
inline constexpr TbScalar kTbScalars[] = {
    {"train_loss", "train/loss"},       {"test_accuracy", "test/accuracy"},
    {"test_loss", "test/loss"},         {"cum_bytes_up", "bytes/uplink_total"},
    {"cum_bytes_down", "bytes/downlink_total"}, {"received", "clients/received"},
    {"rejected", "clients/rejected"},   {"lr", "train/lr"},
    {"wall_s", "time/wall_s"},
};

// A MetricsSink that appends one event per row to an event file (the row's "round" is the
// step; NaN values, e.g. test columns of rounds without evaluation, are skipped) and passes
// the row on to `next` (may be null).
class TensorBoardSink final : public MetricsSink {
 public:
  // Creates "<dir>/events.out.tfevents.<unix seconds>.fedtrain" (dir made if missing) with
  // its file_version record.
  static absl::StatusOr<std::unique_ptr<TensorBoardSink>> Open(const std::string& dir,
                                                               MetricsSink* next);
  ~TensorBoardSink() override;
  absl::Status Write(const MetricsRow& row) override;
  const std::string& path() const { return path_; }

 private:
  TensorBoardSink(std::FILE* f, std::string path, MetricsSink* next)
      : f_(f), path_(std::move(path)), next_(next) {}
  absl::Status Append(const v1::TbEvent& e);
  std::FILE* f_;
  std::string path_;
  MetricsSink* next_;
};

}  // namespace fedtrain

#endif  // FEDTRAIN_RUNTIME_TENSORBOARD_H_
