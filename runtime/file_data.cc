#include "runtime/file_data.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/rng.h"
#include "core/status_macros.h"
#include "data/idx.h"
#include "runtime/npy.h"

namespace fedtrain {
namespace {

// Labels of a split before the number of classes is known.
struct Split {
  Dataset d;                   // num_classes not set yet
  std::vector<int64_t> clients;  // csv client column (else empty)
};

absl::Status Invalid(const std::string& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file, ": ", what));
}

absl::Status CheckFinite(const Split& s, const std::string& file) {
  const size_t f = s.d.num_features;
  for (size_t k = 0; k < s.d.features.size(); ++k)
    if (!std::isfinite(s.d.features[k]))
      return Invalid(file, absl::StrCat("feature ", k % f, " of row ", k / f, " is ",
                                        s.d.features[k], "; every feature must be finite"));
  return absl::OkStatus();
}

absl::StatusOr<Split> LoadIdxSplit(const std::string& images, const std::string& labels,
                                   bool scale) {
  // IDX labels are one byte: 256 bounds them; the classes are settled afterwards.
  FT_ASSIGN_OR_RETURN(Dataset d, LoadIdx(images, labels, 256, scale));
  return Split{std::move(d), {}};
}

// Features x and labels y read from `features` and `labels` (file names, or for npz the
// archive's member names), into a split.
absl::StatusOr<Split> ArraysToSplit(const NpyArray& x, const NpyArray& y,
                                    const std::string& features, const std::string& labels,
                                    bool scale) {
  const size_t n = x.shape[0];
  if (n == 0) return Invalid(features, "has no rows");
  if (!(y.shape.size() == 1 || (y.shape.size() == 2 && y.shape[1] == 1)))
    return Invalid(labels, absl::StrCat("labels must have shape (n,) or (n, 1), got (",
                                        absl::StrJoin(y.shape, ", "), ")"));
  if (y.shape[0] != n)
    return Invalid(labels, absl::StrCat("has ", y.shape[0], " labels but ", features, " has ", n,
                                        " rows"));
  Split s;
  s.d.num_features = x.size() / n;
  if (s.d.num_features == 0) return Invalid(features, "rows have no features");
  const bool u8 = x.dtype == "|u1" || x.dtype == "<u1" || x.dtype == "=u1";
  s.d.features.resize(x.size());
  for (size_t k = 0; k < x.size(); ++k) {
    const double v = NpyElement(x, k);
    s.d.features[k] = static_cast<float>(u8 && scale ? v / 255.0 : v);
  }
  s.d.labels.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const double v = NpyElement(y, i);
    if (!(v >= 0 && v < 2147483647.0) || v != std::floor(v))
      return Invalid(labels, absl::StrCat("label ", v, " of row ", i,
                                          " is not a class index (an integer >= 0)"));
    s.d.labels[i] = static_cast<int32_t>(v);
  }
  FT_RETURN_IF_ERROR(CheckFinite(s, features));
  return s;
}

absl::StatusOr<Split> LoadNpySplit(const std::string& features, const std::string& labels,
                                   bool scale) {
  if (labels.empty())
    return absl::InvalidArgumentError(absl::StrCat(
        "data.files: format npy needs the labels file next to ", features,
        " (data.files.train_labels / test_labels)"));
  FT_ASSIGN_OR_RETURN(NpyArray x, ReadNpyArray(features));
  FT_ASSIGN_OR_RETURN(NpyArray y, ReadNpyArray(labels));
  return ArraysToSplit(x, y, features, labels, scale);
}

absl::StatusOr<Split> LoadNpzSplit(const std::string& archive, const v1::FileDataConfig& f,
                                   bool scale) {
  FT_ASSIGN_OR_RETURN(NpyArray x, ReadNpzArray(archive, f.features_array()));
  FT_ASSIGN_OR_RETURN(NpyArray y, ReadNpzArray(archive, f.labels_array()));
  return ArraysToSplit(x, y, absl::StrCat(archive, ":", f.features_array()),
                       absl::StrCat(archive, ":", f.labels_array()), scale);
}

absl::StatusOr<Split> LoadCsvSplit(const std::string& path, const v1::FileDataConfig& f) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open for reading"));
  std::string line;
  if (!std::getline(in, line)) return Invalid(path, "is empty (a header row is needed)");
  std::vector<std::string> header;
  for (absl::string_view c : absl::StrSplit(absl::StripSuffix(line, "\r"), ','))
    header.emplace_back(absl::StripAsciiWhitespace(c));
  auto column = [&](const std::string& name) -> int {
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == name) return static_cast<int>(c);
    return -1;
  };
  const int label_col = column(f.label_column());
  if (label_col < 0)
    return Invalid(path, absl::StrCat("no column '", f.label_column(),
                                      "' (data.files.label_column); the columns are: ",
                                      absl::StrJoin(header, ", ")));
  int client_col = -1;
  if (!f.client_column().empty()) {
    client_col = column(f.client_column());
    if (client_col < 0)
      return Invalid(path, absl::StrCat("no column '", f.client_column(),
                                        "' (data.files.client_column); the columns are: ",
                                        absl::StrJoin(header, ", ")));
  }
  Split s;
  s.d.num_features = header.size() - 1 - (client_col >= 0 ? 1 : 0);
  if (s.d.num_features == 0) return Invalid(path, "has no feature columns");
  size_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    const absl::string_view row = absl::StripSuffix(line, "\r");
    if (absl::StripAsciiWhitespace(row).empty()) continue;
    const std::vector<absl::string_view> cells = absl::StrSplit(row, ',');
    if (cells.size() != header.size())
      return Invalid(path, absl::StrCat("line ", line_no, " has ", cells.size(),
                                        " fields; the header has ", header.size()));
    for (size_t c = 0; c < cells.size(); ++c) {
      const absl::string_view cell = absl::StripAsciiWhitespace(cells[c]);
      double v;
      if (!absl::SimpleAtod(cell, &v))
        return Invalid(path, absl::StrCat("line ", line_no, ", column '", header[c], "': '", cell,
                                          "' is not a number"));
      if (static_cast<int>(c) == label_col || static_cast<int>(c) == client_col) {
        if (!(v >= 0 && v < 2147483647.0) || v != std::floor(v))
          return Invalid(path, absl::StrCat("line ", line_no, ", column '", header[c], "': ", cell,
                                            " is not an integer >= 0"));
        if (static_cast<int>(c) == label_col) s.d.labels.push_back(static_cast<int32_t>(v));
        else s.clients.push_back(static_cast<int64_t>(v));
      } else {
        if (!std::isfinite(v))
          return Invalid(path, absl::StrCat("line ", line_no, ", column '", header[c], "': ", cell,
                                            "; every feature must be finite"));
        s.d.features.push_back(static_cast<float>(v));
      }
    }
  }
  if (s.d.labels.empty()) return Invalid(path, "has a header but no rows");
  return s;
}

absl::StatusOr<Split> LoadSplit(const v1::DataConfig& cfg, const std::string& main,
                                const std::string& labels) {
  const v1::FileDataConfig& f = cfg.files();
  const bool scale = cfg.normalize() != "none";
  if (f.format() == "idx") {
    if (labels.empty())
      return absl::InvalidArgumentError(absl::StrCat(
          "data.files: format idx needs the labels file next to ", main,
          " (data.files.train_labels / test_labels)"));
    return LoadIdxSplit(main, labels, scale);
  }
  if (f.format() == "npy") return LoadNpySplit(main, labels, scale);
  if (f.format() == "npz") return LoadNpzSplit(main, f, scale);
  return LoadCsvSplit(main, f);
}

// Moves the rows of `from` whose index is in `rows` (ascending) into a new split.
Split Take(const Split& from, const std::vector<uint32_t>& rows) {
  Split out;
  const size_t f = from.d.num_features;
  out.d.num_features = f;
  for (uint32_t r : rows) {
    out.d.features.insert(out.d.features.end(), from.d.features.begin() + size_t{r} * f,
                          from.d.features.begin() + size_t{r + 1} * f);
    out.d.labels.push_back(from.d.labels[r]);
    if (!from.clients.empty()) out.clients.push_back(from.clients[r]);
  }
  return out;
}

}  // namespace

absl::StatusOr<FileData> LoadFileData(const v1::DataConfig& cfg, uint64_t seed) {
  const v1::FileDataConfig& f = cfg.files();
  if (f.format() != "idx" && f.format() != "npy" && f.format() != "npz" && f.format() != "csv")
    return absl::InvalidArgumentError(absl::StrCat(
        "data.files.format must be idx, npy, npz or csv, got '", f.format(), "'"));
  if (f.train().empty())
    return absl::InvalidArgumentError("data.files.train is empty: name the training file");
  FT_ASSIGN_OR_RETURN(Split train, LoadSplit(cfg, f.train(), f.train_labels()));
  Split test;
  if (!f.test().empty()) {
    FT_ASSIGN_OR_RETURN(test, LoadSplit(cfg, f.test(), f.test_labels()));
    if (test.d.num_features != train.d.num_features)
      return absl::InvalidArgumentError(absl::StrCat(
          f.test(), ": rows have ", test.d.num_features, " features, the training rows (",
          f.train(), ") ", train.d.num_features));
  } else {
    if (!(f.test_fraction() > 0 && f.test_fraction() < 1))
      return absl::InvalidArgumentError(absl::StrCat(
          "data.files.test_fraction must be in (0, 1) when data.files.test is empty, got ",
          f.test_fraction()));
    // A seeded permutation; its last ceil(fraction * n) rows are the test split, each split
    // kept in file order.
    const size_t n = train.d.labels.size();
    const size_t n_test = static_cast<size_t>(std::ceil(f.test_fraction() * n));
    if (n_test == 0 || n_test >= n)
      return absl::InvalidArgumentError(absl::StrCat(
          f.train(), ": ", n, " rows cannot be split by data.files.test_fraction ",
          f.test_fraction()));
    std::vector<uint32_t> perm(n);
    for (size_t i = 0; i < n; ++i) perm[i] = static_cast<uint32_t>(i);
    RngStream rng = RngStream::For(seed, 0, 0, Purpose::kDataShuffle);
    rng.Shuffle(absl::MakeSpan(perm));
    std::vector<uint32_t> train_rows(perm.begin(), perm.end() - n_test);
    std::vector<uint32_t> test_rows(perm.end() - n_test, perm.end());
    std::sort(train_rows.begin(), train_rows.end());
    std::sort(test_rows.begin(), test_rows.end());
    test = Take(train, test_rows);
    train = Take(train, train_rows);
  }
  int64_t classes = f.num_classes();
  int32_t top = 0;
  for (int32_t y : train.d.labels) top = std::max(top, y);
  for (int32_t y : test.d.labels) top = std::max(top, y);
  if (classes == 0) {
    classes = int64_t{top} + 1;
    if (classes < 2)
      return absl::InvalidArgumentError(absl::StrCat(
          f.train(), ": every label is 0; a classifier needs at least 2 classes"));
  } else if (classes < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat("data.files.num_classes must be >= 2 (or 0: inferred), got ", classes));
  } else if (top >= classes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a label is ", top, ", out of range for data.files.num_classes = ", classes));
  }
  FileData out;
  out.train = std::move(train.d);
  out.test = std::move(test.d);
  out.train.num_classes = out.test.num_classes = static_cast<int>(classes);
  out.train_clients = std::move(train.clients);
  return out;
}

}  // namespace fedtrain
