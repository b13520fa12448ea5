#include "http/stats_codec.h"

#include "http/json_writer.h"

namespace mm {

namespace {

void AppendDuration(std::string& out, std::string_view key, const DurationStat& d) {
  out += '"';
  out += key;
  out += "\":{\"count\":";
  AppendJsonUint(out, d.count);
  out += ",\"ns\":";
  AppendJsonUint(out, d.ns);
  out += '}';
}

}  // namespace

std::string EncodeStatistics(const std::vector<ModelStatsSnapshot>& all) {
  std::string out = "{\"model_stats\":[";
  for (size_t i = 0; i < all.size(); ++i) {
    const ModelStatsSnapshot& s = all[i];
    if (i) out += ',';
    out += "{\"name\":";
    AppendJsonString(out, s.model);
    out += ",\"version\":";
    AppendJsonString(out, std::to_string(s.version));
    out += ",\"last_inference\":";
    AppendJsonInt(out, s.last_inference_ms);
    out += ",\"inference_count\":";
    AppendJsonUint(out, s.inference_count);
    out += ",\"execution_count\":";
    AppendJsonUint(out, s.execution_count);
    out += ",\"inference_stats\":{";
    AppendDuration(out, "success", s.success);
    out += ',';
    AppendDuration(out, "fail", s.fail);
    out += ',';
    AppendDuration(out, "queue", s.queue);
    out += ',';
    AppendDuration(out, "compute_input", s.compute_input);
    out += ',';
    AppendDuration(out, "compute_infer", s.compute_infer);
    out += ',';
    AppendDuration(out, "compute_output", s.compute_output);
    out += ',';
    AppendDuration(out, "cache_hit", s.cache_hit);
    out += ',';
    AppendDuration(out, "cache_miss", s.cache_miss);
    out += "},\"batch_stats\":[";
    for (size_t j = 0; j < s.batches.size(); ++j) {
      const BatchStat& b = s.batches[j];
      if (j) out += ',';
      out += "{\"batch_size\":";
      AppendJsonInt(out, b.batch_size);
      out += ',';
      AppendDuration(out, "compute_input", b.compute_input);
      out += ',';
      AppendDuration(out, "compute_infer", b.compute_infer);
      out += ',';
      AppendDuration(out, "compute_output", b.compute_output);
      out += '}';
    }
    out += "],\"memory_usage\":[],\"mmserve\":{\"tenant\":";
    AppendJsonString(out, s.tenant);
    out += ",\"in_flight\":";
    AppendJsonInt(out, s.in_flight);
    out += ",\"failures\":{";
    bool first = true;
    for (size_t code = 0; code < s.failures_by_code.size(); ++code) {
      if (s.failures_by_code[code] == 0) continue;
      if (!first) out += ',';
      first = false;
      AppendJsonString(out, StatusCodeName(static_cast<StatusCode>(code)));
      out += ':';
      AppendJsonUint(out, s.failures_by_code[code]);
    }
    out += "},\"loads\":";
    AppendJsonUint(out, s.loads);
    out += ",\"load_failures\":";
    AppendJsonUint(out, s.load_failures);
    out += ",\"last_load_ns\":";
    AppendJsonInt(out, s.last_load_ns);
    out += ",\"evictions\":";
    AppendJsonUint(out, s.evictions);
    out += ",\"on_demand_loads\":";
    AppendJsonUint(out, s.on_demand_loads);
    if (!s.drift.empty()) {
      out += ",\"drift\":[";
      for (size_t j = 0; j < s.drift.size(); ++j) {
        const auto& f = s.drift[j];
        if (j) out += ',';
        out += "{\"input\":";
        AppendJsonString(out, f.input);
        out += ",\"feature\":";
        AppendJsonInt(out, f.feature);
        out += ",\"psi\":";
        if (f.ready) {
          AppendJsonDouble(out, f.psi);
        } else {
          out += "null";
        }
        out += ",\"rows\":";
        AppendJsonUint(out, f.rows);
        out += ",\"alerting\":";
        out += f.alerting ? "true" : "false";
        out += '}';
      }
      out += ']';
    }
    out += "}}";
  }
  out += "]}";
  return out;
}

}  // namespace mm
