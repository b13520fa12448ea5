#include "ctl/table.h"

#include <algorithm>

namespace mm {

namespace {

bool Continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::string Sanitize(std::string s) {
  for (char& c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b == 0x7F) c = ' ';
  }
  return s;
}

void AppendPadded(std::string& line, std::string_view cell, size_t width, Align align) {
  const size_t w = DisplayWidth(cell);
  const size_t pad = width > w ? width - w : 0;
  if (align == Align::kRight) line.append(pad, ' ');
  line += cell;
  if (align == Align::kLeft) line.append(pad, ' ');
}

}  // namespace

size_t DisplayWidth(std::string_view utf8) {
  size_t n = 0;
  for (const char c : utf8) n += Continuation(c) ? 0 : 1;
  return n;
}

std::string TruncateToWidth(std::string_view utf8, size_t width) {
  if (DisplayWidth(utf8) <= width) return std::string(utf8);
  if (width == 0) return "";
  // Keep width - 1 code points, then the ellipsis.
  size_t kept = 0, end = 0;
  while (end < utf8.size()) {
    if (!Continuation(utf8[end])) {
      if (kept == width - 1) break;
      ++kept;
    }
    ++end;
  }
  return std::string(utf8.substr(0, end)) + "…";
}

Table::Table(std::vector<TableColumn> columns) : columns_(std::move(columns)) {}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (std::string& c : cells) c = Sanitize(std::move(c));
  rows_.push_back(std::move(cells));
}

std::string Table::Render(size_t max_width, int shrink) const {
  const size_t n = columns_.size();
  std::vector<size_t> widths(n);
  for (size_t i = 0; i < n; ++i) {
    widths[i] = DisplayWidth(columns_[i].header);
    for (const auto& row : rows_) widths[i] = std::max(widths[i], DisplayWidth(row[i]));
  }
  size_t total = 0;
  for (size_t i = 0; i < n; ++i) total += widths[i] + (i ? 2 : 0);
  if (max_width > 0 && total > max_width && shrink >= 0 && static_cast<size_t>(shrink) < n) {
    const size_t s = static_cast<size_t>(shrink);
    const size_t floor = std::max<size_t>(DisplayWidth(columns_[s].header), 1);
    const size_t over = total - max_width;
    widths[s] = widths[s] > floor + over ? widths[s] - over : std::min(widths[s], floor);
  }
  std::string out;
  auto emit = [&](const std::vector<std::string_view>& cells) {
    std::string line;
    for (size_t i = 0; i < n; ++i) {
      if (i) line += "  ";
      if (static_cast<int>(i) == shrink) {
        AppendPadded(line, TruncateToWidth(cells[i], widths[i]), widths[i], columns_[i].align);
      } else {
        AppendPadded(line, cells[i], widths[i], columns_[i].align);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    if (max_width > 0 && DisplayWidth(line) > max_width) line = TruncateToWidth(line, max_width);
    out += line;
    out += '\n';
  };
  std::vector<std::string_view> cells(n);
  for (size_t i = 0; i < n; ++i) cells[i] = columns_[i].header;
  emit(cells);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < n; ++i) cells[i] = row[i];
    emit(cells);
  }
  return out;
}

}  // namespace mm
