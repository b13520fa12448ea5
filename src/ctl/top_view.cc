#include "ctl/top_view.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "ctl/format.h"
#include "ctl/quantiles.h"
#include "ctl/table.h"

namespace mm {

namespace {

using Key = std::tuple<std::string, std::string, int64_t>;  // name, repository, version

uint64_t Delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

std::string Rate(std::optional<double> r) { return r ? FormatFixed(*r, 1) : "-"; }

}  // namespace

std::vector<TopRow> ComputeTopRows(const Overview* previous, const Overview& current,
                                   double fallback_interval_s) {
  std::map<Key, const OverviewModel*> before;
  double interval_s = fallback_interval_s;
  if (previous != nullptr) {
    for (const OverviewModel& m : previous->models) {
      before[{m.name, m.repository, m.version}] = &m;
    }
    const int64_t dt_ms = current.time_ms - previous->time_ms;
    if (dt_ms > 0) interval_s = static_cast<double>(dt_ms) / 1000;
  }
  const OverviewModel kZero;
  std::vector<TopRow> rows;
  rows.reserve(current.models.size());
  for (const OverviewModel& m : current.models) {
    TopRow& r = rows.emplace_back();
    r.name = m.name;
    r.version = m.version;
    r.state = m.state;
    r.tenant = m.tenant;
    r.queued = m.queued;
    r.executing = m.executing;
    r.memory_bytes = m.memory_bytes;
    if (previous == nullptr || !(interval_s > 0)) continue;
    auto it = before.find({m.name, m.repository, m.version});
    const OverviewModel& b = it != before.end() ? *it->second : kZero;
    // A counter that went down: the version was reloaded; count from zero.
    const bool reset = m.success < b.success || m.failures < b.failures;
    const uint64_t success = reset ? m.success : Delta(m.success, b.success);
    const uint64_t failures = reset ? m.failures : Delta(m.failures, b.failures);
    r.requests_per_s = static_cast<double>(success + failures) / interval_s;
    r.errors_per_s = static_cast<double>(failures) / interval_s;
    std::vector<uint64_t> counts = m.latency_counts;
    if (!reset && b.latency_counts.size() == counts.size()) {
      for (size_t i = 0; i < counts.size(); ++i) {
        counts[i] = Delta(counts[i], b.latency_counts[i]);
      }
    }
    r.p50_s = HistogramQuantile(0.5, current.latency_bounds_s, counts);
    r.p99_s = HistogramQuantile(0.99, current.latency_bounds_s, counts);
  }
  std::sort(rows.begin(), rows.end(), [](const TopRow& a, const TopRow& b) {
    const double ra = a.requests_per_s.value_or(0), rb = b.requests_per_s.value_or(0);
    if (ra != rb) return ra > rb;
    if (a.name != b.name) return a.name < b.name;
    return a.version < b.version;
  });
  return rows;
}

std::string RenderTopFrame(const Overview& current, const std::vector<TopRow>& rows, size_t width,
                           const std::string& footer) {
  std::string header = current.server_name.empty() ? "mmserve" : current.server_name;
  if (!current.server_version.empty()) header += " " + current.server_version;
  if (!current.ready) header += " (not ready)";
  header += "   up " + FormatUptime(current.uptime_s);
  header += "   slots " + std::to_string(current.slots_busy) + "/" +
            std::to_string(current.slots_size) + " busy";
  if (current.slots_waiting > 0)
    header += ", " + std::to_string(current.slots_waiting) + " waiting";
  header += "   memory " + FormatBytes(current.memory_loaded) + " / " +
            (current.memory_budget > 0 ? FormatBytes(current.memory_budget) : "unlimited");
  int ready = 0;
  for (const OverviewModel& m : current.models) ready += m.state == "READY" ? 1 : 0;
  header +=
      "   models " + std::to_string(ready) + "/" + std::to_string(current.models.size()) + " ready";

  Table table({{"MODEL"},
               {"VERSION", Align::kRight},
               {"STATE"},
               {"TENANT"},
               {"REQ/S", Align::kRight},
               {"ERR/S", Align::kRight},
               {"P50 MS", Align::kRight},
               {"P99 MS", Align::kRight},
               {"QUEUE", Align::kRight},
               {"EXEC", Align::kRight},
               {"MEMORY", Align::kRight}});
  for (const TopRow& r : rows) {
    table.AddRow({r.name, r.version > 0 ? std::to_string(r.version) : "-", r.state,
                  r.tenant.empty() ? "-" : r.tenant, Rate(r.requests_per_s), Rate(r.errors_per_s),
                  FormatMs(r.p50_s), FormatMs(r.p99_s), std::to_string(r.queued),
                  std::to_string(r.executing),
                  r.memory_bytes > 0 ? FormatBytes(r.memory_bytes) : "-"});
  }
  std::string out;
  auto fit = [&](std::string line) {
    for (char& c : line) {
      if (static_cast<unsigned char>(c) < 0x20) c = ' ';
    }
    if (width > 0) line = TruncateToWidth(line, width);
    out += line;
    out += '\n';
  };
  fit(header);
  out += '\n';
  out += table.Render(width, 0);
  if (!footer.empty()) {
    out += '\n';
    fit(footer);
  }
  return out;
}

}  // namespace mm
