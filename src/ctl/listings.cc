#include "ctl/listings.h"

#include <simdjson.h>

#include <optional>

#include "ctl/format.h"
#include "ctl/json_read.h"
#include "ctl/table.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;

// Average of a Triton duration statistic {"count": n, "ns": total}, seconds.
std::optional<double> AverageSeconds(dom::element stats, std::string_view key) {
  dom::element d;
  if (stats[key].get(d)) return std::nullopt;
  const int64_t count = JsonInt(d, "count");
  if (count <= 0) return std::nullopt;
  return static_cast<double>(JsonInt(d, "ns")) / static_cast<double>(count) / 1e9;
}

int64_t Count(dom::element stats, std::string_view key) {
  dom::element d;
  if (stats[key].get(d)) return 0;
  return JsonInt(d, "count");
}

}  // namespace

StatusOr<std::string> FormatModelsTable(std::string_view index_json, size_t max_width) {
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, index_json, "the repository index", doc));
  dom::array models;
  if (doc.get(models)) return InvalidArgument("the repository index is not a JSON array");
  Table table({{"NAME"}, {"VERSION"}, {"STATE"}, {"REASON"}});
  for (dom::element m : models) {
    table.AddRow({std::string(JsonString(m, "name")), std::string(JsonString(m, "version", "-")),
                  std::string(JsonString(m, "state")), std::string(JsonString(m, "reason"))});
  }
  return table.Render(max_width, 3);
}

StatusOr<std::string> FormatStatsTable(std::string_view stats_json) {
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, stats_json, "the statistics", doc));
  dom::array all;
  if (doc["model_stats"].get(all)) {
    return InvalidArgument("the statistics have no \"model_stats\" array");
  }
  Table table({{"MODEL"},
               {"VERSION"},
               {"SUCCESS", Align::kRight},
               {"FAILURES", Align::kRight},
               {"EXECUTIONS", Align::kRight},
               {"ROWS", Align::kRight},
               {"QUEUE MS", Align::kRight},
               {"INFER MS", Align::kRight},
               {"TOTAL MS", Align::kRight}});
  for (dom::element s : all) {
    dom::element stats;
    const bool has = !s["inference_stats"].get(stats) && stats.is_object();
    table.AddRow({std::string(JsonString(s, "name")), std::string(JsonString(s, "version")),
                  std::to_string(has ? Count(stats, "success") : 0),
                  std::to_string(has ? Count(stats, "fail") : 0),
                  std::to_string(JsonInt(s, "execution_count")),
                  std::to_string(JsonInt(s, "inference_count")),
                  FormatMs(has ? AverageSeconds(stats, "queue") : std::nullopt),
                  FormatMs(has ? AverageSeconds(stats, "compute_infer") : std::nullopt),
                  FormatMs(has ? AverageSeconds(stats, "success") : std::nullopt)});
  }
  return table.Render();
}

StatusOr<std::string> FormatUsageTable(std::string_view usage_json) {
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, usage_json, "the usage report", doc));
  dom::array tenants;
  if (doc["tenants"].get(tenants)) {
    return InvalidArgument("the usage report has no \"tenants\" array");
  }
  Table table({{"TENANT"},
               {"MODEL"},
               {"REQUESTS", Align::kRight},
               {"FAILURES", Align::kRight},
               {"COMPUTE S", Align::kRight},
               {"BYTES IN", Align::kRight},
               {"BYTES OUT", Align::kRight},
               {"REFUSED", Align::kRight}});
  for (dom::element t : tenants) {
    const std::string tenant(JsonString(t, "tenant"));
    const std::string refused = std::to_string(JsonInt(t, "refused"));
    dom::array models;
    if (t["models"].get(models) || models.size() == 0) {
      table.AddRow({tenant, "-", "0", "0", "0.000", "0 B", "0 B", refused});
      continue;
    }
    bool first = true;
    for (dom::element m : models) {
      table.AddRow({tenant, std::string(JsonString(m, "name")),
                    std::to_string(JsonInt(m, "requests")), std::to_string(JsonInt(m, "failures")),
                    FormatFixed(JsonNumber(m, "compute_seconds"), 3),
                    FormatBytes(JsonInt(m, "bytes_in")), FormatBytes(JsonInt(m, "bytes_out")),
                    first ? refused : ""});
      first = false;
    }
  }
  return table.Render();
}

}  // namespace mm
