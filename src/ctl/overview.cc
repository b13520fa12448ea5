#include "ctl/overview.h"

#include <simdjson.h>

#include <algorithm>

#include "ctl/json_read.h"

namespace mm {

namespace {

namespace dom = simdjson::dom;

std::vector<uint64_t> Counts(dom::element histogram) {
  std::vector<uint64_t> out;
  dom::array counts;
  if (histogram["counts"].get(counts)) return out;
  for (dom::element c : counts) {
    uint64_t v = 0;
    int64_t s = 0;
    if (!c.get(v)) {
      out.push_back(v);
    } else if (!c.get(s)) {
      out.push_back(s > 0 ? static_cast<uint64_t>(s) : 0);
    } else {
      out.push_back(0);
    }
  }
  return out;
}

}  // namespace

StatusOr<Overview> ParseOverview(std::string_view json) {
  dom::parser parser;
  dom::element doc;
  MM_RETURN_IF_ERROR(ParseJson(parser, json, "the console overview", doc));
  const int64_t schema = JsonInt(doc, "schema", -1);
  if (schema != 1) {
    return InvalidArgument("the console overview has schema " + std::to_string(schema) +
                           "; this ctl reads schema 1");
  }
  dom::element server;
  dom::array models;
  if (doc["server"].get(server) || !server.is_object() || doc["models"].get(models)) {
    return InvalidArgument("the console overview lacks its \"server\" object or \"models\" array");
  }
  Overview o;
  o.server_name = std::string(JsonString(server, "name"));
  o.server_version = std::string(JsonString(server, "version"));
  o.ready = JsonBool(server, "ready");
  o.time_ms = JsonInt(server, "time_ms");
  o.uptime_s = JsonNumber(server, "uptime_s");
  o.tenants = JsonBool(server, "tenants");
  dom::element slots;
  if (!doc["slots"].get(slots)) {
    o.slots_size = JsonInt(slots, "size");
    o.slots_busy = JsonInt(slots, "busy");
    o.slots_waiting = JsonInt(slots, "waiting");
  }
  dom::array bounds;
  if (!doc["latency_bounds_s"].get(bounds)) {
    for (dom::element b : bounds) {
      double v = 0;
      if (!b.get(v)) o.latency_bounds_s.push_back(v);
    }
  }
  dom::element memory;
  if (!doc["memory"].get(memory)) {
    o.memory_budget = JsonInt(memory, "budget");
    o.memory_loaded = JsonInt(memory, "loaded");
  }
  for (dom::element m : models) {
    OverviewModel& om = o.models.emplace_back();
    om.name = std::string(JsonString(m, "name"));
    om.version = JsonInt(m, "version");
    om.state = std::string(JsonString(m, "state"));
    om.tenant = std::string(JsonString(m, "tenant"));
    om.repository = std::string(JsonString(m, "repository"));
    om.memory_bytes = JsonInt(m, "memory_bytes");
    om.queued = JsonInt(m, "queued");
    om.executing = JsonInt(m, "executing");
    dom::element stats;
    if (!m["stats"].get(stats) && stats.is_object()) {
      om.has_stats = true;
      om.success = static_cast<uint64_t>(std::max<int64_t>(0, JsonInt(stats, "success")));
      om.failures = static_cast<uint64_t>(std::max<int64_t>(0, JsonInt(stats, "failures")));
      dom::element latency;
      if (!stats["latency"].get(latency)) om.latency_counts = Counts(latency);
    }
  }
  return o;
}

}  // namespace mm
