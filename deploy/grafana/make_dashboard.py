#!/usr/bin/env python3
"""Writes deploy/grafana/mmserve.json, mmserve's Grafana dashboard (issue 25).

The dashboard is generated so that every panel's query is written once, with
the template variables' selector, and so that tests/deploy/test_grafana_dashboard.py
can check it against the server: valid JSON, every query parses (promtool),
every metric it reads is in a real scrape of mmserve.

  python deploy/grafana/make_dashboard.py            # rewrites mmserve.json
  python deploy/grafana/make_dashboard.py --check    # fails if mmserve.json is stale
"""
import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "mmserve.json"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance",tenant=~"$tenant",model=~"$model"'
INSTANCE = 'instance=~"$instance"'
SERVER_ERRORS = 'code=~"INTERNAL|UNAVAILABLE|DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED"'


def target(expr, legend, ref):
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref}


def panel(pid, title, description, targets, x, y, unit="short", w=12, h=8, kind="timeseries",
          extra=None):
    p = {
        "id": pid, "type": kind, "title": title, "description": description,
        "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "right",
                               "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
    }
    if extra:
        p.update(extra)
    return p


def variable(name, label, query, include_all=True):
    return {
        "name": name, "label": label, "type": "query", "datasource": DS,
        "query": {"query": query, "refId": name}, "definition": query,
        "refresh": 2, "sort": 1, "multi": True, "includeAll": include_all,
        "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    }


def dashboard():
    rate = "$__rate_interval"
    panels = [
        panel(1, "Request rate", "Requests a second reaching each model, by outcome class.", [
            (f'sum by (model) (rate(mmserve_inference_requests_total{{{SEL},code="OK"}}[{rate}]))',
             "{{model}} ok"),
            (f'sum by (model) (rate(mmserve_inference_requests_total{{{SEL},code!="OK"}}[{rate}]))',
             "{{model}} failed"),
        ], 0, 0, unit="reqps"),
        panel(2, "Error ratio", "Server-side failures (INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED, "
              "RESOURCE_EXHAUSTED) over all requests; the MmserveHighErrorRatio alert fires above "
              "5%.", [
                  (f'sum by (model) (rate(mmserve_inference_requests_total{{{SEL},{SERVER_ERRORS}}}[{rate}]))'
                   f' / sum by (model) (rate(mmserve_inference_requests_total{{{SEL}}}[{rate}]))',
                   "{{model}}"),
              ], 12, 0, unit="percentunit"),
        panel(3, "Latency p50 / p99 / p99.9", "Successful requests, from the transport's first "
              "read to the answer.", [
                  (f'histogram_quantile({q}, sum by (model, le) (rate(mmserve_inference_request_duration_seconds_bucket{{{SEL}}}[{rate}])))',
                   f"{{{{model}}}} p{label}")
                  for q, label in ((0.5, "50"), (0.99, "99"), (0.999, "99.9"))
              ], 0, 8, unit="s"),
        panel(4, "Queue and compute time", "Mean time per successful request waiting in the "
              "model's queue, and in the execution's input, infer and output stages.", [
                  (f'sum by (model) (rate(mmserve_inference_{stage}_duration_seconds_sum{{{SEL}}}[{rate}]))'
                   f' / sum by (model) (rate(mmserve_inference_{stage}_duration_seconds_count{{{SEL}}}[{rate}]))',
                   f"{{{{model}}}} {stage.replace('compute_', '')}")
                  for stage in ("queue", "compute_input", "compute_infer", "compute_output")
              ], 12, 8, unit="s", extra={"fieldConfig": {"defaults": {
                  "unit": "s", "custom": {"stacking": {"mode": "normal"}, "fillOpacity": 30}},
                  "overrides": []}}),
        panel(5, "Batch sizes", "Rows per model execution (dynamic batching), as a heatmap.", [
            (f'sum by (le) (rate(mmserve_inference_batch_size_bucket{{{SEL}}}[{rate}]))', "{{le}}"),
        ], 0, 16, kind="heatmap", extra={
            "targets": [dict(target(f'sum by (le) (rate(mmserve_inference_batch_size_bucket{{{SEL}}}[{rate}]))',
                                    "{{le}}", "A"), format="heatmap")],
            "options": {"calculate": False, "yAxis": {"unit": "short"}}}),
        panel(6, "Memory against the budget", "Loaded models' memory and pinned memory against "
              "--model-memory-budget, per server (0: no budget).", [
                  (f'sum by (instance) (mmserve_memory_loaded_bytes{{{INSTANCE}}})', "{{instance}} loaded"),
                  (f'sum by (instance) (mmserve_memory_pinned_bytes{{{INSTANCE}}})', "{{instance}} pinned"),
                  (f'sum by (instance) (mmserve_memory_budget_bytes{{{INSTANCE}}})', "{{instance}} budget"),
              ], 12, 16, unit="bytes"),
        panel(7, "Loads and evictions", "Model loads (on demand among them), failed loads and "
              "evictions; a model evicted and loaded again and again means the budget is too small.", [
                  (f'sum by (model) (increase(mmserve_model_loads_total{{{SEL}}}[{rate}]))', "{{model}} loads"),
                  (f'sum by (model) (increase(mmserve_model_on_demand_loads_total{{{SEL}}}[{rate}]))',
                   "{{model}} on demand"),
                  (f'sum by (model) (increase(mmserve_model_load_failures_total{{{SEL}}}[{rate}]))',
                   "{{model}} failed"),
                  (f'sum by (model) (increase(mmserve_model_evictions_total{{{SEL}}}[{rate}]))',
                   "{{model}} evictions"),
              ], 0, 24),
        panel(8, "Worker restarts", "Failures of models' worker processes (each is followed by a "
              "restart with backoff).", [
                  (f'sum by (model) (increase(mmserve_model_worker_restarts_total{{{SEL}}}[{rate}]))',
                   "{{model}}"),
              ], 12, 24),
        panel(9, "Input drift (PSI)", "Population stability index per input feature against the "
              "model's drift_baseline.json; above --drift-psi-threshold (0.2) it has drifted.", [
                  (f'max by (model, input, feature) (mmserve_drift_psi{{{SEL}}})',
                   "{{model}} {{input}}[{{feature}}]"),
              ], 0, 32),
        panel(10, "Usage by tenant", "Requests a second and execution seconds a second per tenant "
              "(the usage ledger).", [
                  (f'sum by (tenant) (rate(mmserve_tenant_requests_total{{{INSTANCE},tenant=~"$tenant"}}[{rate}]))',
                   "{{tenant}} requests/s"),
                  (f'sum by (tenant) (rate(mmserve_tenant_compute_seconds_total{{{INSTANCE},tenant=~"$tenant"}}[{rate}]))',
                   "{{tenant}} compute s/s"),
                  (f'sum by (tenant) (rate(mmserve_tenant_refused_total{{{INSTANCE},tenant=~"$tenant"}}[{rate}]))',
                   "{{tenant}} refused/s"),
              ], 12, 32),
        panel(11, "Queue depth and in flight", "Requests waiting in each model's queue against "
              "its capacity (max_queue_size; bounded queues only), and requests not yet answered.", [
                  (f'sum by (model) (mmserve_inference_queue_depth{{{SEL}}})', "{{model}} queued"),
                  (f'sum by (model) (mmserve_inference_queue_capacity{{{SEL}}})', "{{model}} capacity"),
                  (f'sum by (model) (mmserve_inference_in_flight{{{SEL}}})', "{{model}} in flight"),
              ], 0, 40),
        panel(12, "Execution slots", "Busy slots and executions waiting for one, against the "
              "slots (--execution-slots), per server; sampled at each scrape.", [
                  (f'sum by (instance) (mmserve_execution_slots_busy{{{INSTANCE}}})', "{{instance}} busy"),
                  (f'sum by (instance) (mmserve_execution_slots_waiting{{{INSTANCE}}})', "{{instance}} waiting"),
                  (f'sum by (instance) (mmserve_execution_slots{{{INSTANCE}}})', "{{instance}} slots"),
              ], 12, 40),
    ]
    return {
        "title": "mmserve", "uid": "mmserve", "description": "mmserve: models, latency, memory, "
        "lifecycle, drift and tenants (deploy/grafana/make_dashboard.py writes this file)",
        "tags": ["mmserve", "inference"], "editable": True, "schemaVersion": 39, "version": 1,
        "graphTooltip": 1, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "timepicker": {}, "timezone": "browser", "annotations": {"list": []}, "links": [],
        "templating": {"list": [
            {"name": "datasource", "label": "Prometheus", "type": "datasource",
             "query": "prometheus", "current": {}, "hide": 0},
            variable("instance", "Instance", "label_values(mmserve_inference_requests_total, instance)"),
            variable("tenant", "Tenant",
                     'label_values(mmserve_inference_requests_total{instance=~"$instance"}, tenant)'),
            variable("model", "Model",
                     'label_values(mmserve_inference_requests_total{instance=~"$instance",tenant=~"$tenant"}, model)'),
        ]},
        "panels": panels,
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(dashboard(), indent=2) + "\n"
    if args.check:
        if OUT.read_text() != text:
            sys.exit(f"{OUT} is stale: run python {Path(__file__).relative_to(Path.cwd())}")
        return
    OUT.write_text(text)


if __name__ == "__main__":
    main()
