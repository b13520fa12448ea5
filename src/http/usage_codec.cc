#include "http/usage_codec.h"

#include "http/json_writer.h"

namespace mm {

std::string EncodeUsage(const std::vector<TenantUsageReport>& reports) {
  std::string out = "{\"tenants\":[";
  for (size_t i = 0; i < reports.size(); ++i) {
    const TenantUsageReport& t = reports[i];
    if (i) out += ',';
    out += "{\"tenant\":";
    AppendJsonString(out, t.tenant);
    out += ",\"refused\":";
    AppendJsonUint(out, t.refused);
    out += ",\"models\":[";
    for (size_t j = 0; j < t.models.size(); ++j) {
      const auto& [name, f] = t.models[j];
      if (j) out += ',';
      out += "{\"name\":";
      AppendJsonString(out, name);
      out += ",\"requests\":";
      AppendJsonUint(out, f.requests);
      out += ",\"failures\":";
      AppendJsonUint(out, f.failures);
      out += ",\"queue_seconds\":";
      AppendJsonDouble(out, static_cast<double>(f.queue_ns) / 1e9);
      out += ",\"compute_seconds\":";
      AppendJsonDouble(out, static_cast<double>(f.compute_ns) / 1e9);
      out += ",\"queue_ns\":";
      AppendJsonUint(out, f.queue_ns);
      out += ",\"compute_ns\":";
      AppendJsonUint(out, f.compute_ns);
      out += ",\"bytes_in\":";
      AppendJsonUint(out, f.bytes_in);
      out += ",\"bytes_out\":";
      AppendJsonUint(out, f.bytes_out);
      out += '}';
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

}  // namespace mm
