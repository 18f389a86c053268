#!/usr/bin/env bash
# Issue 3 end-to-end benchmark: spinewatch against SimpleITK on the same synthetic
# 400-slice 512x512 study, both on 2 threads: read + decode + HU + resample to 1 mm
# (trilinear / sitkLinear, same output grid). The sagittal reformat is not measured yet
# (it lands separately in issue 3).
#
#   benches/e2e/volume_vs_simpleitk.sh            # 3 runs of each, interleaved
#   RUNS=5 STUDY=/tmp/s400 benches/e2e/volume_vs_simpleitk.sh
#   OURS_BIN=/other/target/release/examples/resample_study ...   # another build of ours
#
# Prints one line per run (wall seconds, user + system CPU seconds and peak RSS from
# /usr/bin/time, and each tool's own step timings) and a summary with medians and the ratio. Results are recorded in
# benches/runs/ with the machine description.
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
STUDY=${STUDY:-target/bench-e2e/study-400}
SPACING_MM=${SPACING_MM:-1.0}
THREADS=2
PYTHON=${PYTHON:-.venv/bin/python}
OURS_BIN=${OURS_BIN:-target/release/examples/resample_study}
TIME=/usr/bin/time

[ -x "$TIME" ] || { echo "needs GNU time at $TIME (Debian package: time)" >&2; exit 1; }
"$PYTHON" -c "import SimpleITK, numpy" 2>/dev/null \
  || { echo "needs SimpleITK and numpy in $PYTHON: run scripts/setup --tests" >&2; exit 1; }

cargo build --release -q -p spinewatch
cargo build --release -q -p spinewatch-volume --example resample_study

if [ ! -f "$STUDY/ground_truth.json" ]; then
  rm -rf "$STUDY"
  target/release/spinewatch synth --out "$STUDY" --seed 1 --age 72 --fracture L1:2:wedge \
    --slices 400 >/dev/null
fi
SERIES_DIR=$(dirname "$(find "$STUDY" -name '*.dcm' | head -n 1)")
files=$(find "$SERIES_DIR" -name '*.dcm' | wc -l)
bytes=$(du -sb "$SERIES_DIR" | cut -f1)
# Both tools read from the page cache: warm it once.
cat "$SERIES_DIR"/*.dcm >/dev/null

# Pin both to two cores where the machine has more (the target deployment has 2).
PIN=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt "$THREADS" ]; then
  PIN=(taskset -c 0,1)
fi

ours() {
  RAYON_NUM_THREADS=$THREADS "${PIN[@]}" "$TIME" -f "%e %U %S %M" -o "$1" \
    "$OURS_BIN" "$SERIES_DIR" "$SPACING_MM"
}
sitk() {
  # int16 in (as ours holds HU) and out: SimpleITK's lowest-memory configuration.
  "${PIN[@]}" "$TIME" -f "%e %U %S %M" -o "$1" "$PYTHON" crates/testkit/py/sitk_resample.py \
    "$SERIES_DIR" --spacing "$SPACING_MM" --threads "$THREADS" --read-type int16 --out-type int16
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "study: $SERIES_DIR, $files files, $bytes bytes; $THREADS threads; ${PIN[*]:-(not pinned)}"
echo "run tool        wall_s  cpu_s  peak_rss_MB  steps"
for i in $(seq 1 "$RUNS"); do
  ours "$tmp/t" >"$tmp/out"
  read -r wall user sys kb <"$tmp/t"
  cpu=$(awk "BEGIN { print $user + $sys }")
  steps=$(grep '^RESULT' "$tmp/out" | sed 's/^RESULT //')
  printf '%-3s %-10s %7s %6.2f %12.1f  %s\n' "$i" spinewatch "$wall" "$cpu" "$(awk "BEGIN { print $kb * 1024 / 1e6 }")" "$steps"
  echo "ours $wall $cpu $kb" >>"$tmp/all"
  sitk "$tmp/t" >"$tmp/out"
  read -r wall user sys kb <"$tmp/t"
  cpu=$(awk "BEGIN { print $user + $sys }")
  steps=$("$PYTHON" -c 'import json, sys; r = json.load(sys.stdin); print("read_s=%.3f resample_s=%.3f output=%s" % (r["read_s"], r["resample_s"], "x".join(map(str, r["output"]["size"]))))' <"$tmp/out")
  printf '%-3s %-10s %7s %6.2f %12.1f  %s\n' "$i" simpleitk "$wall" "$cpu" "$(awk "BEGIN { print $kb * 1024 / 1e6 }")" "$steps"
  echo "sitk $wall $cpu $kb" >>"$tmp/all"
done
import_s=$( { "$TIME" -f "%e" "$PYTHON" -c "import SimpleITK, numpy" ; } 2>&1 | tail -n 1)
raw=$((files * 512 * 512 * 2))
"$PYTHON" - "$tmp/all" "$raw" "$import_s" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
raw, import_s = int(sys.argv[2]), float(sys.argv[3])
med = {
    t: [statistics.median(float(r[c]) for r in rows if r[0] == t) for c in (1, 2, 3)]
    for t in ("ours", "sitk")
}
print(f"raw volume: {raw} bytes ({raw / 1e6:.1f} MB); python + SimpleITK import alone: {import_s} s")
for t, name in (("ours", "spinewatch"), ("sitk", "SimpleITK")):
    w, c, kb = med[t]
    m = kb * 1024
    print(f"{name:10} median wall {w:.2f} s, CPU {c:.2f} s, peak RSS {m / 1e6:.0f} MB = {m / raw:.2f} x raw")
print(f"speed-up, medians: wall {med['sitk'][0] / med['ours'][0]:.1f} x, CPU {med['sitk'][1] / med['ours'][1]:.1f} x")
PY
