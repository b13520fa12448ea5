#!/usr/bin/env python3
"""Writes a model's drift baseline (drift_baseline.json) from sample inputs.

mmserve compares the live inputs of a model with this baseline and reports,
per input feature, the population stability index (PSI) of a sliding window
of sampled requests against it. Put the file beside the model's config.pbtxt.

  python scripts/make_drift_baseline.py --input INPUT0=samples.npy \\
      [--input INPUT1=more.npy] [--bins 10] [--out drift_baseline.json]

Each .npy array has shape [N, ...]: N sample rows of that input, as requests
send them without the batch dimension. A row is flattened (row-major); feature
j is its j-th element. Numeric and bool arrays only.

Per feature, the cut points are the sample quantiles at 1/k, ..., (k-1)/k
(numpy's 'inverted_cdf': each is a sample value), de-duplicated, so a feature
with repeated values gets fewer, merged bins (a constant feature gets one cut
point and two bins). A value v falls in bin i = the number of cut points < v,
i.e. np.searchsorted(edges, v, side='left'), the rule the server uses; the
expected fraction of each bin is counted from the samples with that rule. NaN
values are left out (the server counts them apart); a feature with no other
value gets a single bin.

Format (version 1; the server rejects anything else):

  {"version": 1, "bins": 10, "generator": "make_drift_baseline.py",
   "inputs": {"INPUT0": {"rows": N, "features": [
       {"edges": [e1, ..., e_{m-1}], "expected": [p1, ..., p_m]}, ...]}}}

edges: finite, strictly ascending, at most bins-1; expected: non-negative,
one more than edges, summing to 1. Limits: bins 1..100, at most 4096 features
per input, at most 64 inputs.

Needs numpy only.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

VERSION = 1
MAX_BINS = 100
MAX_FEATURES_PER_INPUT = 4096
MAX_INPUTS = 64


def feature_baseline(values: np.ndarray, bins: int) -> dict:
    """Cut points and expected fractions for one feature's sample values."""
    values = values[~np.isnan(values)]
    if values.size == 0:
        return {"edges": [], "expected": [1.0]}
    quantiles = np.arange(1, bins) / bins
    edges = np.quantile(values, quantiles, method="inverted_cdf") if bins > 1 else np.array([])
    edges = np.unique(edges[np.isfinite(edges)])  # sorted, duplicates merged
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)
    expected = counts / values.size
    return {"edges": [float(e) for e in edges], "expected": [float(p) for p in expected]}


def input_baseline(name: str, samples: np.ndarray, bins: int) -> dict:
    if samples.dtype.kind not in "biuf":
        raise ValueError(f"input '{name}': dtype {samples.dtype} is not numeric or bool")
    if samples.ndim < 1 or samples.shape[0] == 0:
        raise ValueError(f"input '{name}': needs shape [N, ...] with N >= 1, got {samples.shape}")
    rows = samples.reshape(samples.shape[0], -1).astype(np.float64)
    if rows.shape[1] == 0:
        raise ValueError(f"input '{name}': rows have no elements (shape {samples.shape})")
    if rows.shape[1] > MAX_FEATURES_PER_INPUT:
        raise ValueError(f"input '{name}': {rows.shape[1]} features per row; the server's "
                         f"limit is {MAX_FEATURES_PER_INPUT}")
    features = []
    for j in range(rows.shape[1]):
        f = feature_baseline(rows[:, j], bins)
        if len(f["edges"]) == 0 and np.isnan(rows[:, j]).all():
            print(f"warning: input '{name}' feature {j} is NaN in every sample: one bin",
                  file=sys.stderr)
        features.append(f)
    return {"rows": int(rows.shape[0]), "features": features}


def baseline(inputs: dict, bins: int) -> dict:
    """inputs: name -> samples array. Returns the baseline document."""
    if not 1 <= bins <= MAX_BINS:
        raise ValueError(f"--bins is {bins}; it must be from 1 to {MAX_BINS}")
    if not inputs:
        raise ValueError("no --input given")
    if len(inputs) > MAX_INPUTS:
        raise ValueError(f"{len(inputs)} inputs; the server's limit is {MAX_INPUTS}")
    return {
        "version": VERSION,
        "bins": bins,
        "generator": "make_drift_baseline.py",
        "inputs": {name: input_baseline(name, a, bins) for name, a in inputs.items()},
    }


def dumps(doc: dict) -> str:
    """JSON with one feature per line; floats as Python writes them (they round-trip)."""
    head = {k: v for k, v in doc.items() if k != "inputs"}
    lines = ["{" + json.dumps(head)[1:-1] + ', "inputs": {']
    names = list(doc["inputs"])
    for n, name in enumerate(names):
        inp = doc["inputs"][name]
        lines.append(f'  {json.dumps(name)}: {{"rows": {inp["rows"]}, "features": [')
        feats = inp["features"]
        for i, f in enumerate(feats):
            lines.append("    " + json.dumps(f, allow_nan=False) + ("," if i + 1 < len(feats) else ""))
        lines.append("  ]}" + ("," if n + 1 < len(names) else ""))
    lines.append("}}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy",
                        help="an input's sample rows (repeatable)")
    parser.add_argument("--bins", type=int, default=10,
                        help="bins per feature before merging (1..100, default 10)")
    parser.add_argument("--out", default="drift_baseline.json",
                        help="the file to write (default drift_baseline.json)")
    args = parser.parse_args(argv)

    inputs = {}
    for spec in args.input:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--input {spec!r}: expected NAME=FILE.npy")
        if name in inputs:
            parser.error(f"--input {name!r} given twice")
        try:
            inputs[name] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            parser.error(f"--input {name}: cannot read {path}: {e}")
    try:
        doc = baseline(inputs, args.bins)
    except ValueError as e:
        parser.error(str(e))
    pathlib.Path(args.out).write_text(dumps(doc))
    total = sum(len(i["features"]) for i in doc["inputs"].values())
    print(f"wrote {args.out}: {len(inputs)} input(s), {total} feature(s), up to {args.bins} bins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
