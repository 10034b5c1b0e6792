// `fedtrain plot`'s figure: the 2x2 panels drawn on a cairo context (DrawFigure). One drawing
// routine serves PNG and SVG; only the surface differs (plot_runs.cc renders and writes it;
// metrics.csv parsing is in run_metrics.cc, the axis ticks in ticks.cc, the text helpers in
// painter.h).
#include "plot/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cairo.h"
#include "core/status_macros.h"
#include "plot/painter.h"

namespace fedtrain {

using plot_internal::HAlign;
using plot_internal::Painter;
using plot_internal::SanitizeUtf8;
using plot_internal::VAlign;

namespace {

// Enough decimals to tell neighbouring ticks apart and no more; %g for extreme magnitudes.
std::string TickLabel(double v, double step) {
  const double mag = std::max(std::fabs(v), step);
  if (mag >= 1e7 || (step > 0 && step < 1e-4)) return absl::StrFormat("%g", v);
  int decimals = 0;
  if (step > 0 && step < 1) decimals = static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
  return absl::StrFormat("%.*f", decimals, v);
}

// ---------------------------------------------------------------------------------------
// Figure

struct Rgb {
  double r, g, b;
};
// Tableau 10: ten hues that stay apart for most colour-vision deficiencies.
constexpr Rgb kPalette[] = {{0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173},
                            {0.839, 0.153, 0.157}, {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294},
                            {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}, {0.737, 0.741, 0.133},
                            {0.090, 0.745, 0.812}};
constexpr int kNumColours = sizeof(kPalette) / sizeof(kPalette[0]);

constexpr double kPi = 3.14159265358979323846;

// After ten runs the colours repeat, so the dash pattern changes (in multiples of the width;
// round caps add half a width at each end, which makes the near-zero dashes dots).
void SetRunStyle(cairo_t* cr, size_t run, double line_width) {
  const Rgb& c = kPalette[run % kNumColours];
  cairo_set_source_rgb(cr, c.r, c.g, c.b);
  cairo_set_line_width(cr, line_width);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  const double w = line_width;
  switch ((run / kNumColours) % 4) {
    case 0:
      cairo_set_dash(cr, nullptr, 0, 0);
      break;
    case 1: {
      const double d[] = {4 * w, 3 * w};
      cairo_set_dash(cr, d, 2, 0);
      break;
    }
    case 2: {
      const double d[] = {0.01 * w, 2.5 * w};
      cairo_set_dash(cr, d, 2, 0);
      break;
    }
    default: {
      const double d[] = {4 * w, 2.5 * w, 0.01 * w, 2.5 * w};
      cairo_set_dash(cr, d, 4, 0);
      break;
    }
  }
}

// Back to plain lines for frames, ticks and markers.
void ResetStyle(cairo_t* cr) {
  cairo_set_dash(cr, nullptr, 0, 0);
  cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
}

struct Series {
  std::vector<double> x, y;  // Only points where both are finite (and x > 0 on a log axis).
};

struct Panel {
  std::string title, x_title, y_title;
  bool x_is_round;             // Integer ticks only.
  bool x_log;                  // Logarithmic x axis.
  std::vector<Series> series;  // One per run, in run order (colour follows the index).
};

struct Rect {
  double x, y, w, h;
  double right() const { return x + w; }
  double bottom() const { return y + h; }
};

// One axis: the visible interval in plotted units (log10 of the value on a log axis).
struct Axis {
  double lo = 0, hi = 1;
  bool log = false;
  bool empty = true;  // No data: [0, 1] is drawn with a note.
  double Map(double v) const { return log ? std::log10(v) : v; }
  // Position of a value as a fraction of the axis length.
  double Fraction(double v) const { return (Map(v) - lo) / (hi - lo); }
};

// Pads the data range so that lines do not run along the frame, never below zero for
// quantities that cannot be negative, and widens a single value into a visible interval.
Axis MakeAxis(const std::vector<Series>& series, bool use_x, bool log, double pad_fraction) {
  Axis a;
  a.log = log;
  double lo = 0, hi = 0;
  for (const Series& s : series) {
    for (double v : use_x ? s.x : s.y) {
      const double m = a.Map(v);
      lo = a.empty ? m : std::min(lo, m);
      hi = a.empty ? m : std::max(hi, m);
      a.empty = false;
    }
  }
  if (a.empty) {
    a.log = false;
    return a;
  }
  double pad = (hi - lo) * pad_fraction;
  if (pad == 0) pad = log ? 0.5 : lo == 0 ? 1 : std::fabs(lo) * 0.1;
  a.lo = lo - pad;
  a.hi = hi + pad;
  if (!log && lo >= 0) a.lo = std::max(a.lo, 0.0);  // Counts, bytes, losses, accuracies.
  return a;
}

struct Ticks {
  std::vector<double> values;  // In data units.
  std::vector<std::string> labels;
};

// Ticks for an axis of `length` device units whose labels must not touch: tries sparser
// sets until every pair of neighbouring labels has `min_gap` between them.
Ticks FitTicks(Painter& p, const Axis& a, double length, double min_gap, bool horizontal,
               double min_step, double font_size) {
  Ticks t;
  // Linear: a target count from the length, lowered step by step. Log: 1-2-5 per decade
  // (only over less than two decades, where plain decades are too few), then every decade,
  // every second decade, ...
  const int start =
      a.log ? (a.hi - a.lo < 2 ? 0 : 1)
            : std::clamp(static_cast<int>(length / (font_size * (horizontal ? 6 : 3))), 2, 10);
  for (int level = start; a.log ? level <= 40 : level >= 1; level += a.log ? 1 : -1) {
    t.values = a.log ? LogTicks(std::pow(10.0, a.lo), std::pow(10.0, a.hi), level)
                     : NiceTicks(a.lo, a.hi, level, min_step);
    const double step = t.values.size() > 1 ? t.values[1] - t.values[0] : 1;
    t.labels.clear();
    for (double v : t.values) t.labels.push_back(TickLabel(v, a.log ? v : step));
    bool fits = true;
    for (size_t i = 1; i < t.values.size() && fits; ++i) {
      const double dist = length * (a.Fraction(t.values[i]) - a.Fraction(t.values[i - 1]));
      const double need =
          horizontal ? (p.Width(t.labels[i]) + p.Width(t.labels[i - 1])) / 2 : font_size;
      fits = dist >= need + min_gap;
    }
    if (fits) break;
  }
  return t;
}

// Snaps a coordinate to a pixel centre so that 1-unit lines are sharp in the PNG.
double Crisp(double v) { return std::floor(v) + 0.5; }

// Where a panel's parts go. Computed before drawing, so that the panels of one column can
// share the widest y labels' width and so line up their x axes.
struct PanelLayout {
  Axis xa, ya;
  Ticks x_ticks, y_ticks;
  double y_labels_w = 0;
  Rect plot{};
};

PanelLayout LayOutPanel(Painter& p, const Panel& panel, const Rect& cell, double fs,
                        double min_y_labels_w) {
  PanelLayout l;
  l.xa = MakeAxis(panel.series, true, panel.x_log, 0.02);
  l.ya = MakeAxis(panel.series, false, false, 0.05);
  // The plot's height is known before its width: the width depends on the y labels.
  p.SetFont(fs, false);
  const double top = cell.y + 1.9 * fs;                          // Panel title.
  const double bottom = cell.bottom() - (1.7 + 1.5 + 0.4) * fs;  // x title, labels, ticks.
  l.y_ticks = FitTicks(p, l.ya, bottom - top, 1.2 * fs, false, 0.0, fs);
  l.y_labels_w = min_y_labels_w;
  for (const std::string& s : l.y_ticks.labels) l.y_labels_w = std::max(l.y_labels_w, p.Width(s));
  // y title, labels, gap, ticks.
  const double left = cell.x + 1.7 * fs + l.y_labels_w + 0.3 * fs + 0.4 * fs;
  // Room on the right for half of the last x label, which is centred on its tick.
  const double right = cell.right() - 1.5 * fs;
  l.plot = Rect{left, top, std::max(right - left, 1.0), std::max(bottom - top, 1.0)};
  l.x_ticks = FitTicks(p, l.xa, l.plot.w, 1.5 * fs, true, panel.x_is_round ? 1.0 : 0.0, fs);
  return l;
}

void DrawPanel(Painter& p, const Panel& panel, const PanelLayout& layout, const Rect& cell,
               double fs, double line_width) {
  cairo_t* cr = p.cr();
  const double tick_len = 0.4 * fs;
  const Axis& xa = layout.xa;
  const Axis& ya = layout.ya;
  const Ticks& x_ticks = layout.x_ticks;
  const Ticks& y_ticks = layout.y_ticks;
  const Rect& plot = layout.plot;
  const bool no_data = xa.empty || ya.empty;

  auto px = [&](double x) { return plot.x + xa.Fraction(x) * plot.w; };
  auto py = [&](double y) { return plot.bottom() - ya.Fraction(y) * plot.h; };

  // Grid first, so that the data lines draw over it. A log axis labelled only at powers of
  // ten gets faint lines at 2..9 times each, without which positions cannot be read off.
  cairo_set_line_width(cr, 1);
  if (xa.log && x_ticks.values.size() >= 2 &&
      std::fabs(x_ticks.values[1] / x_ticks.values[0] - 10) < 1e-6) {
    cairo_set_source_rgb(cr, 0.95, 0.95, 0.95);
    for (double v = x_ticks.values[0] / 10; v <= std::pow(10.0, xa.hi); v *= 10) {
      for (int m = 2; m <= 9; ++m) {
        const double f = xa.Fraction(m * v);
        if (f < 0 || f > 1) continue;
        cairo_move_to(cr, Crisp(px(m * v)), plot.y);
        cairo_line_to(cr, Crisp(px(m * v)), plot.bottom());
      }
    }
    cairo_stroke(cr);
  }
  cairo_set_source_rgb(cr, 0.89, 0.89, 0.89);
  for (double t : x_ticks.values) {
    cairo_move_to(cr, Crisp(px(t)), plot.y);
    cairo_line_to(cr, Crisp(px(t)), plot.bottom());
  }
  for (double t : y_ticks.values) {
    cairo_move_to(cr, plot.x, Crisp(py(t)));
    cairo_line_to(cr, plot.right(), Crisp(py(t)));
  }
  cairo_stroke(cr);

  // Markers show where the evaluations are when there are few of them (and make a
  // one-point run visible at all); on dense curves they would only thicken the lines.
  // One choice for the whole panel, so that runs look alike.
  size_t most_points = 0;
  for (const Series& s : panel.series) most_points = std::max(most_points, s.x.size());
  const bool markers = most_points <= 30;

  // Data, clipped to the plot so that nothing spills onto the labels.
  cairo_save(cr);
  cairo_rectangle(cr, plot.x, plot.y, plot.w, plot.h);
  cairo_clip(cr);
  for (size_t run = 0; run < panel.series.size(); ++run) {
    const Series& s = panel.series[run];
    if (s.x.empty()) continue;
    SetRunStyle(cr, run, line_width);
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (i == 0) {
        cairo_move_to(cr, px(s.x[i]), py(s.y[i]));
      } else {
        cairo_line_to(cr, px(s.x[i]), py(s.y[i]));
      }
    }
    cairo_stroke(cr);
    if (markers || s.x.size() == 1) {
      ResetStyle(cr);
      for (size_t i = 0; i < s.x.size(); ++i) {
        cairo_new_sub_path(cr);
        cairo_arc(cr, px(s.x[i]), py(s.y[i]), 1.6 * line_width, 0, 2 * kPi);
      }
      cairo_fill(cr);
    }
  }
  cairo_restore(cr);  // Also drops the run's dash and caps.

  // Frame and tick marks.
  cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
  cairo_set_line_width(cr, 1);
  cairo_rectangle(cr, Crisp(plot.x), Crisp(plot.y), std::round(plot.w), std::round(plot.h));
  for (double t : x_ticks.values) {
    cairo_move_to(cr, Crisp(px(t)), Crisp(plot.bottom()));
    cairo_line_to(cr, Crisp(px(t)), Crisp(plot.bottom()) + tick_len);
  }
  for (double t : y_ticks.values) {
    cairo_move_to(cr, Crisp(plot.x), Crisp(py(t)));
    cairo_line_to(cr, Crisp(plot.x) - tick_len, Crisp(py(t)));
  }
  cairo_stroke(cr);

  // Tick labels.
  cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
  p.SetFont(fs, false);
  for (size_t i = 0; i < x_ticks.values.size(); ++i)
    p.Text(x_ticks.labels[i], px(x_ticks.values[i]), plot.bottom() + tick_len + 0.2 * fs,
           HAlign::kCenter, VAlign::kTop);
  for (size_t i = 0; i < y_ticks.values.size(); ++i)
    p.Text(y_ticks.labels[i], plot.x - tick_len - 0.3 * fs, py(y_ticks.values[i]), HAlign::kRight,
           VAlign::kCenter);

  // Axis titles; the y title reads bottom to top, as is usual.
  p.SetFont(1.05 * fs, false);
  p.Text(p.Fit(panel.x_title, plot.w), plot.x + plot.w / 2, cell.bottom(), HAlign::kCenter,
         VAlign::kBottom);
  cairo_save(cr);
  cairo_translate(cr, cell.x, plot.y + plot.h / 2);
  cairo_rotate(cr, -kPi / 2);
  p.Text(p.Fit(panel.y_title, plot.h), 0, 0, HAlign::kCenter, VAlign::kTop);
  cairo_restore(cr);

  p.SetFont(1.15 * fs, true);
  p.Text(p.Fit(panel.title, cell.w), plot.x + plot.w / 2, cell.y + 0.2 * fs, HAlign::kCenter,
         VAlign::kTop);

  if (no_data) {
    cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
    p.SetFont(fs, false);
    p.Text("no evaluated rounds", plot.x + plot.w / 2, plot.y + plot.h / 2, HAlign::kCenter,
           VAlign::kCenter);
  }
}

// The legend: a swatch and a label per run, in rows wrapped to `width` and centred.
// Returns the height used.
double DrawLegend(Painter& p, const std::vector<std::string>& labels, double x0, double y0,
                  double width, double fs, double line_width) {
  cairo_t* cr = p.cr();
  p.SetFont(fs, false);
  const double swatch = 2.2 * fs, gap = 0.5 * fs, spacing = 1.6 * fs, row_h = 1.6 * fs;
  struct Item {
    std::string text;
    double w;
  };
  std::vector<Item> items;
  for (const std::string& l : labels) {
    std::string t = p.Fit(l, std::max(width - swatch - gap, fs));
    const double w = swatch + gap + p.Width(t);
    items.push_back({std::move(t), w});
  }
  // Greedy wrap: as many items per row as fit.
  std::vector<std::pair<size_t, size_t>> rows;  // [begin, end)
  for (size_t i = 0; i < items.size();) {
    size_t j = i;
    double w = 0;
    while (j < items.size() && (j == i || w + spacing + items[j].w <= width)) {
      w += (j == i ? 0 : spacing) + items[j].w;
      ++j;
    }
    rows.emplace_back(i, j);
    i = j;
  }
  for (size_t r = 0; r < rows.size(); ++r) {
    double w = 0;
    for (size_t i = rows[r].first; i < rows[r].second; ++i)
      w += (i == rows[r].first ? 0 : spacing) + items[i].w;
    double x = x0 + (width - w) / 2;
    const double y = y0 + (r + 0.5) * row_h;
    for (size_t i = rows[r].first; i < rows[r].second; ++i) {
      SetRunStyle(cr, i, line_width);
      cairo_move_to(cr, x + line_width / 2, y);  // Round caps: keep the ink inside the swatch.
      cairo_line_to(cr, x + swatch - line_width / 2, y);
      cairo_stroke(cr);
      ResetStyle(cr);
      cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
      p.Text(items[i].text, x + swatch + gap, y, HAlign::kLeft, VAlign::kCenter);
      x += items[i].w + spacing;
    }
  }
  return rows.size() * row_h;
}

// Points where both coordinates are finite: unevaluated rounds (NaN) drop out and the line
// joins the evaluations on either side. Magnitudes beyond kMaxValue (a loss that blew up to
// 1e308, say) are dropped too, since the axis span computed from them would overflow.
Series MakeSeries(const std::vector<double>& x, const std::vector<double>& y, double x_scale,
                  double y_scale) {
  constexpr double kMaxValue = 1e100;
  Series s;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    if (!(std::fabs(x[i]) <= kMaxValue) || !(std::fabs(y[i]) <= kMaxValue)) continue;
    s.x.push_back(x[i] * x_scale);
    s.y.push_back(y[i] * y_scale);
  }
  return s;
}

// A log axis for uplink traffic when the runs' totals differ by this factor or more: a
// compressed run then sends so little that on a linear axis its whole curve would be
// squeezed against x = 0 beside an uncompressed one.
constexpr double kLogTrafficRatio = 20;

bool UseLogTraffic(const std::vector<Series>& series) {
  double smallest = 0, largest = 0;
  for (const Series& s : series) {
    double total = 0;
    for (double x : s.x) total = std::max(total, x);
    if (total <= 0) continue;
    smallest = smallest == 0 ? total : std::min(smallest, total);
    largest = std::max(largest, total);
  }
  return smallest > 0 && largest >= kLogTrafficRatio * smallest;
}

// Zero traffic (a round-0 evaluation) has no place on a log axis.
void DropNonPositiveX(Series* s) {
  Series kept;
  for (size_t i = 0; i < s->x.size(); ++i) {
    if (s->x[i] <= 0) continue;
    kept.x.push_back(s->x[i]);
    kept.y.push_back(s->y[i]);
  }
  *s = std::move(kept);
}

}  // namespace

namespace plot_internal {

void DrawFigure(cairo_t* cr, const std::vector<RunMetrics>& runs, const PlotOptions& opts) {
  const double width = opts.width, height = opts.height;
  // Everything scales with the figure, so 600x450 and 2400x1800 look alike.
  const double fs = std::clamp(std::min(width / 1.333, height) * 0.0135, 8.0, 40.0);
  const double line_width = std::max(1.5, 0.17 * fs);
  const double margin = fs;

  Painter p(cr);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);

  double y = margin * 0.6;
  if (!opts.title.empty()) {
    cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
    p.SetFont(1.5 * fs, true);
    p.Text(p.Fit(SanitizeUtf8(opts.title), width - 2 * margin), width / 2, y, HAlign::kCenter,
           VAlign::kTop);
    y += 2.1 * fs;
  }
  std::vector<std::string> labels;
  for (const RunMetrics& r : runs) labels.push_back(SanitizeUtf8(r.label));
  y += DrawLegend(p, labels, margin, y, width - 2 * margin, fs, line_width);
  y += 0.6 * fs;

  constexpr double kMb = 1e6;  // Decimal megabytes, as network rates are quoted.
  const char* const kUp = "cumulative uplink (MB)";
  const char* const kAcc = "test accuracy (%)";
  std::vector<Panel> panels = {
      {"Test accuracy by round", "round", kAcc, /*x_is_round=*/true, /*x_log=*/false, {}},
      {"Test accuracy by uplink traffic", kUp, kAcc, false, false, {}},
      {"Test loss by round", "round", "test loss", true, false, {}},
      {"Test loss by uplink traffic", kUp, "test loss", false, false, {}},
  };
  for (const RunMetrics& r : runs) {
    const std::vector<double>& round = *r.Column("round");
    const std::vector<double>& up = *r.Column("cum_bytes_up");
    const std::vector<double>& acc = *r.Column("test_accuracy");
    const std::vector<double>& loss = *r.Column("test_loss");
    panels[0].series.push_back(MakeSeries(round, acc, 1, 100));
    panels[1].series.push_back(MakeSeries(up, acc, 1 / kMb, 100));
    panels[2].series.push_back(MakeSeries(round, loss, 1, 1));
    panels[3].series.push_back(MakeSeries(up, loss, 1 / kMb, 1));
  }
  // Both traffic panels get the same scale, decided on all their points together.
  std::vector<Series> traffic = panels[1].series;
  traffic.insert(traffic.end(), panels[3].series.begin(), panels[3].series.end());
  if (UseLogTraffic(traffic)) {
    for (Panel* panel : {&panels[1], &panels[3]}) {
      panel->x_log = true;
      panel->x_title = "cumulative uplink (MB, log scale)";
      for (Series& s : panel->series) DropNonPositiveX(&s);
    }
  }

  const double gap_x = 2 * fs, gap_y = 1.5 * fs;
  const double cell_w = (width - 2 * margin - gap_x) / 2;
  const double cell_h = (height - y - margin - gap_y) / 2;
  Rect cells[4];
  double y_labels_w[2] = {0, 0};  // Per column.
  for (int i = 0; i < 4; ++i) {
    cells[i] =
        Rect{margin + (i % 2) * (cell_w + gap_x), y + (i / 2) * (cell_h + gap_y), cell_w, cell_h};
    y_labels_w[i % 2] =
        std::max(y_labels_w[i % 2], LayOutPanel(p, panels[i], cells[i], fs, 0).y_labels_w);
  }
  for (int i = 0; i < 4; ++i) {
    const PanelLayout layout = LayOutPanel(p, panels[i], cells[i], fs, y_labels_w[i % 2]);
    DrawPanel(p, panels[i], layout, cells[i], fs, line_width);
  }
}

}  // namespace plot_internal
}  // namespace fedtrain
