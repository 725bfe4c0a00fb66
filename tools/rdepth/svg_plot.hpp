// A line chart as SVG text: named series of (x, y) points on a log2 x axis (core iterations r)
// and a linear y axis from 0 to 1 (accuracy), with ticks, labels and a legend. Used by
// `rdepth eval --plot FILE.svg`; no library, the SVG is written out element by element.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace rdepth {

struct PlotSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x > 0, y in [0, 1])
};

inline std::string svg_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

inline std::string svg_line_chart(const std::string& title, const std::string& x_label,
                                  const std::string& y_label,
                                  const std::vector<PlotSeries>& series) {
  constexpr double kWidth = 640, kHeight = 420, kLeft = 70, kRight = 170, kTop = 40, kBottom = 60;
  constexpr const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"};
  double low = 1, high = 2;
  bool any = false;
  for (const PlotSeries& s : series)
    for (const auto& [x, y] : s.points) {
      low = any ? std::min(low, x) : x;
      high = any ? std::max(high, x) : x;
      any = true;
    }
  const double l0 = std::log2(low), l1 = std::max(std::log2(high), l0 + 1);
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  const auto px = [&](double x) { return kLeft + (std::log2(x) - l0) / (l1 - l0) * plot_w; };
  const auto py = [&](double y) { return kTop + (1.0 - y) * plot_h; };

  std::ostringstream svg;
  char buf[256];
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << kWidth << "\" height=\"" << kHeight
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << kLeft + plot_w / 2 << "\" y=\"22\" text-anchor=\"middle\" "
      << "font-size=\"15\">" << svg_escape(title) << "</text>\n";
  for (int i = 0; i <= 10; i += 2) {  // y grid and ticks
    const double y = py(i / 10.0);
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n",
                  kLeft, y, kLeft + plot_w, y, kLeft - 6, y + 4, i / 10.0);
    svg << buf;
  }
  for (double x = std::exp2(std::ceil(l0)); x <= std::exp2(l1) * 1.0001; x *= 2) {  // x ticks
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                  "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n",
                  px(x), kTop, px(x), kTop + plot_h, px(x), kTop + plot_h + 18, x);
    svg << buf;
  }
  svg << "<rect x=\"" << kLeft << "\" y=\"" << kTop << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"black\"/>\n"
      << "<text x=\"" << kLeft + plot_w / 2 << "\" y=\"" << kHeight - 18
      << "\" text-anchor=\"middle\">" << svg_escape(x_label) << "</text>\n"
      << "<text transform=\"translate(20," << kTop + plot_h / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << svg_escape(y_label) << "</text>\n";
  for (std::size_t i = 0; i < series.size(); ++i) {
    const char* colour = kColours[i % std::size(kColours)];
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" points=\"";
    for (const auto& [x, y] : series[i].points) {
      std::snprintf(buf, sizeof buf, "%.1f,%.1f ", px(x), py(y));
      svg << buf;
    }
    svg << "\"/>\n";
    for (const auto& [x, y] : series[i].points) {
      std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    px(x), py(y), colour);
      svg << buf;
    }
    const double ly = kTop + 10 + 20.0 * static_cast<double>(i);
    std::snprintf(buf, sizeof buf,
                  "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2\"/>\n",
                  kLeft + plot_w + 12, ly, kLeft + plot_w + 32, ly, colour);
    svg << buf << "<text x=\"" << kLeft + plot_w + 38 << "\" y=\"" << ly + 4 << "\">"
        << svg_escape(series[i].name) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace rdepth
