// Internals of the figure: text on a cairo context (UTF-8 clean-up and aligned labels in one
// face at two weights) and the figure drawing routine. Internal to plot/. Not thread-safe: one Painter per context.
#ifndef FEDTRAIN_PLOT_PAINTER_H_
#define FEDTRAIN_PLOT_PAINTER_H_

#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "cairo.h"
#include "plot/plot.h"

namespace fedtrain {
namespace plot_internal {

// cairo's toy text API puts the context into an error state on invalid UTF-8 (a folder
// name in Latin-1, say), which would lose the whole figure; such bytes become '?'.
std::string SanitizeUtf8(absl::string_view s);

enum class HAlign { kLeft, kCenter, kRight };
enum class VAlign { kTop, kCenter, kBaseline, kBottom };

// Text drawing on one cairo context, in one face at two weights. Sizes are in device units.
class Painter {
 public:
  explicit Painter(cairo_t* cr) : cr_(cr) {}
  cairo_t* cr() const { return cr_; }

  void SetFont(double size, bool bold) {
    cairo_select_font_face(cr_, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr_, size);
  }
  double Width(const std::string& s) {
    cairo_text_extents_t e;
    cairo_text_extents(cr_, s.c_str(), &e);
    return e.x_advance;
  }
  // Shortens `s` with a trailing "..." until it fits `max_width` (current font).
  std::string Fit(const std::string& s, double max_width) {
    if (Width(s) <= max_width) return s;
    std::string t = s;
    while (!t.empty()) {
      // Drop one whole UTF-8 character: its continuation bytes, then its first byte.
      while (!t.empty() && (static_cast<unsigned char>(t.back()) & 0xC0) == 0x80) t.pop_back();
      if (!t.empty()) t.pop_back();
      if (Width(t + "...") <= max_width) break;
    }
    return t + "...";
  }
  // Alignment uses the font's ascent and descent, not the string's ink, so labels in a row
  // share one baseline whatever letters they hold.
  void Text(const std::string& s, double x, double y, HAlign h, VAlign v) {
    cairo_font_extents_t fe;
    cairo_font_extents(cr_, &fe);
    const double w = Width(s);
    if (h == HAlign::kCenter) x -= w / 2;
    if (h == HAlign::kRight) x -= w;
    switch (v) {
      case VAlign::kTop:
        y += fe.ascent;
        break;
      case VAlign::kCenter:
        y += (fe.ascent - fe.descent) / 2;
        break;
      case VAlign::kBaseline:
        break;
      case VAlign::kBottom:
        y -= fe.descent;
        break;
    }
    cairo_move_to(cr_, x, y);
    cairo_show_text(cr_, s.c_str());
  }

 private:
  cairo_t* cr_;
};

// Draws the 2x2 figure of `runs` on `cr` (plot.cc).
void DrawFigure(cairo_t* cr, const std::vector<RunMetrics>& runs, const PlotOptions& opts);

}  // namespace plot_internal
}  // namespace fedtrain

#endif  // FEDTRAIN_PLOT_PAINTER_H_
