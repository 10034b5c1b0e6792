// `fedtrain plot`'s entry point (plot.h PlotRuns): checks the options, reads the run folders,
// renders the figure (figure drawing in plot.cc) into memory as PNG or SVG, and writes it in
// one step, so that file errors carry errno and never leave half a file.
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cairo-svg.h"
#include "cairo.h"
#include "core/status_macros.h"
#include "plot/painter.h"
#include "plot/plot.h"

namespace fedtrain {
namespace {

using plot_internal::DrawFigure;

cairo_status_t AppendToString(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};
using SurfacePtr = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using ContextPtr = std::unique_ptr<cairo_t, ContextDeleter>;

absl::Status CairoError(cairo_status_t s, absl::string_view what, const std::string& output) {
  return absl::InternalError(
      absl::StrCat("plot ", output, ": cairo ", what, " failed: ", cairo_status_to_string(s)));
}

enum class Format { kPng, kSvg };

// Renders the figure into `out` (the bytes of the PNG or SVG file).
absl::Status Render(Format format, const std::vector<RunMetrics>& runs, const PlotOptions& opts,
                    std::string* out) {
  SurfacePtr surface(
      format == Format::kPng
          ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, opts.width, opts.height)
          : cairo_svg_surface_create_for_stream(AppendToString, out, opts.width, opts.height));
  if (cairo_status_t s = cairo_surface_status(surface.get()); s != CAIRO_STATUS_SUCCESS)
    return CairoError(s, "surface creation", opts.output);
  {
    ContextPtr cr(cairo_create(surface.get()));
    if (cairo_status_t s = cairo_status(cr.get()); s != CAIRO_STATUS_SUCCESS)
      return CairoError(s, "context creation", opts.output);
    DrawFigure(cr.get(), runs, opts);
    // cairo records the first error on the context and ignores later calls, so one check
    // after drawing catches any of them.
    if (cairo_status_t s = cairo_status(cr.get()); s != CAIRO_STATUS_SUCCESS)
      return CairoError(s, "drawing", opts.output);
  }
  if (format == Format::kPng) {
    cairo_surface_flush(surface.get());
    if (cairo_status_t s = cairo_surface_write_to_png_stream(surface.get(), AppendToString, out);
        s != CAIRO_STATUS_SUCCESS)
      return CairoError(s, "PNG encoding", opts.output);
  } else {
    cairo_surface_finish(surface.get());  // Emits the rest of the SVG document.
    if (cairo_status_t s = cairo_surface_status(surface.get()); s != CAIRO_STATUS_SUCCESS)
      return CairoError(s, "SVG output", opts.output);
  }
  return absl::OkStatus();
}

absl::Status WriteFile(const std::string& path, const std::string& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return absl::ErrnoToStatus(errno, absl::StrCat("cannot write plot ", path));
  const bool wrote = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  int err = errno;
  const bool closed = std::fclose(f) == 0;  // A full disk may only show here.
  if (wrote && closed) return absl::OkStatus();
  if (wrote) err = errno;
  std::remove(path.c_str());  // No half-written figure left behind to be mistaken for one.
  return absl::ErrnoToStatus(err, absl::StrCat("cannot write plot ", path));
}

// Two runs named alike ("seed0" under two experiment folders) would share a legend entry;
// those get their parent folder's name in front.
void DisambiguateLabels(const std::vector<std::string>& dirs, std::vector<RunMetrics>* runs) {
  std::map<std::string, int> count;
  for (const RunMetrics& r : *runs) ++count[r.label];
  for (size_t i = 0; i < runs->size(); ++i) {
    RunMetrics& r = (*runs)[i];
    if (count[r.label] < 2) continue;
    std::error_code ec;
    std::filesystem::path p = std::filesystem::absolute(dirs[i], ec);
    if (ec) continue;
    p = p.lexically_normal();
    if (!p.has_filename()) p = p.parent_path();
    const std::string parent = p.parent_path().filename().string();
    if (!parent.empty()) r.label = absl::StrCat(parent, "/", r.label);
  }
}

}  // namespace

absl::Status PlotRuns(const std::vector<std::string>& run_dirs, const PlotOptions& opts) {
  if (run_dirs.empty()) return absl::InvalidArgumentError("plot: no run folders given");
  if (opts.output.empty())
    return absl::InvalidArgumentError("plot: no output path given (a .png or .svg file)");
  const std::string ext =
      absl::AsciiStrToLower(std::filesystem::path(opts.output).extension().string());
  Format format;
  if (ext == ".png") {
    format = Format::kPng;
  } else if (ext == ".svg") {
    format = Format::kSvg;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("plot: output ", opts.output, " has extension '",
                                                   ext, "'; supported are .png and .svg"));
  }
  // Below this the labels crowd out the panels; above it a PNG takes hundreds of megabytes.
  constexpr int kMinWidth = 320, kMinHeight = 240, kMaxSide = 8192;
  if (opts.width < kMinWidth || opts.height < kMinHeight || opts.width > kMaxSide ||
      opts.height > kMaxSide)
    return absl::InvalidArgumentError(absl::StrFormat(
        "plot: size %dx%d is out of range; width must be in [%d, %d] and height in [%d, %d]",
        opts.width, opts.height, kMinWidth, kMaxSide, kMinHeight, kMaxSide));

  std::vector<RunMetrics> runs;
  for (const std::string& dir : run_dirs) {
    FT_ASSIGN_OR_RETURN(RunMetrics m, ReadRunMetrics(dir));
    runs.push_back(std::move(m));
  }
  DisambiguateLabels(run_dirs, &runs);

  std::string bytes;
  FT_RETURN_IF_ERROR(Render(format, runs, opts, &bytes));
  return WriteFile(opts.output, bytes);
}

}  // namespace fedtrain
