#!/usr/bin/env bash
# Issue 24's placement simulation: builds fleet_sim (Release), replays the
# issue's fleet (10,000 models over 100 servers, Zipf popularity, log-normal
# sizes, a diurnal shift) under every policy, and draws docs/fleet_sim.png.
#
#   bash bench/fleet_sim/run.sh [BUILD_DIR] [fleet_sim flags...]
#
# BUILD_DIR defaults to build/release (configured as Release when new). The
# table goes to stdout and build/fleet_sim/results.txt, the CSV to
# build/fleet_sim/results.csv. Single-threaded; about 1.5 minutes here.
set -euo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build/release}
shift || true
if [[ ! -f $build/build.ninja ]]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release
fi
cmake --build "$build" -j1 --target fleet_sim

out=build/fleet_sim
mkdir -p "$out"
"$build/bench/fleet_sim" --models 10000 --servers 100 --memory-fraction 0.4 \
  --size-median 200MB --size-sigma 1.0 --zipf 1.0 --diurnal-shift 1.0 \
  --rate 2000 --requests 10000000 --seed 1 --csv "$out/results.csv" "$@" |
  tee "$out/results.txt"

python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
"$python" bench/fleet_sim/plot.py "$out/results.csv" docs/fleet_sim.png
