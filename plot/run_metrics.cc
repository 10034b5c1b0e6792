// metrics.csv of a run folder: parsing by column name and reading it from disk (plot.h).
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status_macros.h"
#include "plot/plot.h"

namespace fedtrain {

// ---------------------------------------------------------------------------------------
// metrics.csv

const std::vector<double>* RunMetrics::Column(absl::string_view name) const {
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return &columns[i];
  return nullptr;
}

namespace {

// One CSV line (RFC 4180 quoting: "a,b" is one field, "" inside quotes is a quote) into
// fields with surrounding blanks removed. False for an unterminated quoted field. Metrics
// files never hold a line break inside a field, so lines are split first.
bool SplitCsvLine(absl::string_view line, std::vector<std::string>* fields) {
  fields->clear();
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quoted) {
      if (ch != '"') {
        cur += ch;
      } else if (i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else {
        quoted = false;
      }
    } else if (ch == '"') {
      quoted = true;
    } else if (ch == ',') {
      fields->emplace_back(absl::StripAsciiWhitespace(cur));
      cur.clear();
    } else {
      cur += ch;
    }
  }
  if (quoted) return false;
  fields->emplace_back(absl::StripAsciiWhitespace(cur));
  return true;
}

}  // namespace

absl::StatusOr<RunMetrics> ParseMetricsCsv(absl::string_view text, const std::string& source) {
  // A BOM appears when a spreadsheet re-saves the file; it is not part of the first name.
  if (absl::StartsWith(text, "\xEF\xBB\xBF")) text.remove_prefix(3);
  RunMetrics m;
  std::vector<bool> required;  // Per column: refuse non-numeric cells.
  size_t round_col = 0;
  bool have_header = false;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (absl::EndsWith(line, "\r")) line.remove_suffix(1);   // Files written on Windows.
    if (absl::StripAsciiWhitespace(line).empty()) continue;  // Trailing newline, blank lines.
    std::vector<std::string> fields;
    if (!SplitCsvLine(line, &fields))
      return absl::InvalidArgumentError(
          absl::StrCat(source, ":", line_no, ": a quoted field is not closed"));
    if (!have_header) {
      have_header = true;
      for (absl::string_view f : fields) {
        if (std::find(m.names.begin(), m.names.end(), f) != m.names.end())
          return absl::InvalidArgumentError(
              absl::StrCat(source, ":", line_no, ": column '", f, "' appears twice in the header"));
        m.names.emplace_back(f);
      }
      m.columns.resize(m.names.size());
      required.assign(m.names.size(), false);
      for (absl::string_view want : kRequiredMetricsColumns) {
        auto it = std::find(m.names.begin(), m.names.end(), want);
        if (it == m.names.end())
          return absl::InvalidArgumentError(absl::StrCat(
              source, ":", line_no, ": missing required column '", want, "' (header: ", line,
              "); is this a metrics.csv written by `fedtrain simulate`?"));
        required[it - m.names.begin()] = true;
      }
      round_col = std::find(m.names.begin(), m.names.end(), "round") - m.names.begin();
      continue;
    }
    if (fields.size() != m.names.size())
      return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": row has ",
                                                     fields.size(), " fields, the header has ",
                                                     m.names.size()));
    for (size_t i = 0; i < fields.size(); ++i) {
      double v;
      if (!absl::SimpleAtod(fields[i], &v)) {
        if (required[i])
          return absl::InvalidArgumentError(absl::StrCat(source, ":", line_no, ": column '",
                                                         m.names[i], "' holds '", fields[i],
                                                         "', not a number"));
        v = std::nan("");
      }
      if (i == round_col && !std::isfinite(v))
        return absl::InvalidArgumentError(
            absl::StrCat(source, ":", line_no, ": round is '", fields[i], "', not finite"));
      m.columns[i].push_back(v);
    }
  }
  if (!have_header)
    return absl::InvalidArgumentError(absl::StrCat(source,
                                                   ": empty file, expected a header "
                                                   "line starting with 'round,'"));
  return m;
}

namespace {

// The folder's own name, also for "runs/a/", "." and "runs/a/..", which have no last
// component as written.
std::string BaseName(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(dir, ec);
  if (ec) p = dir;
  p = p.lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() ? dir : name;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR)
      return absl::NotFoundError(absl::StrCat(path,
                                              " not found; pass run folders written by "
                                              "`fedtrain simulate`"));
    return absl::ErrnoToStatus(err, absl::StrCat("cannot read ", path));
  }
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  const int err = errno;
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) return absl::ErrnoToStatus(err, absl::StrCat("cannot read ", path));
  return out;
}

}  // namespace

absl::StatusOr<RunMetrics> ReadRunMetrics(const std::string& run_dir) {
  const std::string path = (std::filesystem::path(run_dir) / "metrics.csv").string();
  FT_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  FT_ASSIGN_OR_RETURN(RunMetrics m, ParseMetricsCsv(text, path));
  m.label = BaseName(run_dir);
  return m;
}

}  // namespace fedtrain
