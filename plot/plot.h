// `fedtrain plot`: reads the metrics.csv of one or more run folders (written by
// `fedtrain simulate`) and draws a 2x2 figure with cairo (test accuracy and test loss, each
// against round and against cumulative uplink MB), one coloured line per run, as PNG or SVG.
// The uplink axis turns logarithmic when the runs' total traffic differs 20-fold or more.
// Pure functions of their arguments: thread-compatible, no shared state; every call owns the
// cairo surface it draws on.
#ifndef FEDTRAIN_PLOT_PLOT_H_
#define FEDTRAIN_PLOT_PLOT_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fedtrain {

struct PlotOptions {
  std::string output;  // Path of the figure; ".png" or ".svg" (any case) picks the format.
  int width = 1200;    // Pixels for PNG, points for SVG.
  int height = 900;
  std::string title;  // Drawn above the panels; empty draws no title.
};

// The columns of one run's metrics.csv, looked up by header name so that extra columns and
// any column order are accepted. Every column has one value per data row; "nan" cells (rounds
// without evaluation) are kept as NaN and skipped when drawing.
struct RunMetrics {
  std::string label;                         // Base name of the run folder.
  std::vector<std::string> names;            // Header, in file order.
  std::vector<std::vector<double>> columns;  // columns[i] belongs to names[i].

  size_t num_rows() const { return columns.empty() ? 0 : columns[0].size(); }
  // Null when the header has no such column.
  const std::vector<double>* Column(absl::string_view name) const;
};

// Columns every metrics.csv must have; ParseMetricsCsv refuses a header without one.
inline constexpr absl::string_view kRequiredMetricsColumns[] = {"round", "test_accuracy",
                                                                "test_loss", "cum_bytes_up"};

// Parses the text of a metrics.csv. `source` (the file name) and the 1-based line number
// appear in every error. InvalidArgument: empty file, missing required column, duplicate
// column, a row with the wrong number of fields, or a required column's cell that is not a
// number. A cell of another column that is not a number is kept as NaN, so that a column we
// do not draw (a text tag, say) cannot make the file unreadable.
absl::StatusOr<RunMetrics> ParseMetricsCsv(absl::string_view text, const std::string& source);

// Reads <run_dir>/metrics.csv and labels it with the folder's base name. NotFound names the
// missing metrics.csv; parse errors are those of ParseMetricsCsv.
absl::StatusOr<RunMetrics> ReadRunMetrics(const std::string& run_dir);

// Tick positions for an axis over [lo, hi]: multiples of 1, 2 or 5 times a power of ten,
// about `target` of them, all inside [lo, hi]. `min_step` bounds the spacing from below
// (1 for round numbers, which have no fractional ticks).
std::vector<double> NiceTicks(double lo, double hi, int target, double min_step = 0.0);

// Tick positions for a log axis over [lo, hi] (lo > 0). Level 0: 1, 2 and 5 times each power
// of ten; level k >= 1: the powers of ten whose exponent is a multiple of k. Used to draw
// uplink traffic when runs differ by orders of magnitude (compressed against uncompressed).
std::vector<double> LogTicks(double lo, double hi, int level);

// Reads every run folder, then draws and writes the figure. InvalidArgument: no runs, an
// empty output path, an unsupported extension (named), a size out of range. Errors from
// ReadRunMetrics pass through. The figure is rendered in memory and then written, so an
// unwritable output path is an errno-based status naming the path (NotFound for a missing
// folder, PermissionDenied, ...) and leaves no partial file; a cairo failure is Internal.
absl::Status PlotRuns(const std::vector<std::string>& run_dirs, const PlotOptions& opts);

}  // namespace fedtrain

#endif  // FEDTRAIN_PLOT_PLOT_H_
