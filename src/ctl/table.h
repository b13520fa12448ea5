// Text tables for the ctl's listings: a header row and aligned columns
// separated by two spaces, sized to their widest cell. Widths count code
// points, not bytes, so "…" and other UTF-8 text line up (wide CJK
// characters are counted as one column: good enough for a listing).
//
// Cells are sanitized when added: control characters (newlines in a failure
// reason, escape sequences in a model name) become spaces, so nothing the
// server sends can move the cursor or break a row.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mm {

// Number of code points in `utf8` (continuation bytes are not counted).
size_t DisplayWidth(std::string_view utf8);

// `utf8` cut to at most `width` columns, its last shown column then "…" when
// it was cut. Never splits a code point.
std::string TruncateToWidth(std::string_view utf8, size_t width);

enum class Align { kLeft, kRight };

struct TableColumn {
  std::string header;
  Align align = Align::kLeft;
};

class Table {
 public:
  explicit Table(std::vector<TableColumn> columns);

  // Missing cells are empty; extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // The header line then one line per row, each ending in '\n', without
  // trailing spaces. With `max_width` > 0, a line wider than that first
  // shrinks column `shrink` (when >= 0; truncating its cells with "…", not
  // below its header's width), then is cut at `max_width`.
  std::string Render(size_t max_width = 0, int shrink = -1) const;

 private:
  std::vector<TableColumn> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace mm
