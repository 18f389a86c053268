#!/usr/bin/env bash
# Issue 3 end-to-end benchmark: spinewatch against SimpleITK on the same synthetic
# 400-slice 512x512 study, both on 2 threads.
#
# - common part, measured for both: read + decode + HU + resample to 1 mm (trilinear /
#   sitkLinear, same output grid). spinewatch: `resample_study --common-only`; SimpleITK:
#   ImageSeriesReader + ResampleImageFilter (crates/testkit/py/sitk_resample.py).
# - spinewatch's full chain: the common part, then spine localisation and the sagittal
#   reformat (`resample_study`). SimpleITK has no counterpart for those two steps, so the
#   full chain is reported on its own; its ratio to SimpleITK's common part is printed
#   for reference only and is not like for like.
#
#   benches/e2e/volume_vs_simpleitk.sh            # 3 runs of each, interleaved
#   RUNS=5 STUDY=/tmp/s400 benches/e2e/volume_vs_simpleitk.sh
#   OURS_BIN=/other/target/release/examples/resample_study ...   # another build of ours
#
# Prints one line per run (wall seconds, user + system CPU seconds and peak RSS from
# /usr/bin/time, and each tool's own step timings), the load average before and after,
# and a summary with medians and the ratios. Results are recorded in benches/runs/ with
# the machine description.
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

cargo build --release -q -p spinewatch-volume --example resample_study

if [ ! -f "$STUDY/ground_truth.json" ]; then
  # The generator is the spinewatch binary: built only when a study must be made.
  cargo build --release -q -p spinewatch
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

# ours TIMEFILE [--common-only]
ours() {
  local t=$1
  shift
  RAYON_NUM_THREADS=$THREADS "${PIN[@]}" "$TIME" -f "%e %U %S %M" -o "$t" \
    "$OURS_BIN" "$@" "$SERIES_DIR" "$SPACING_MM"
}
sitk() {
  # int16 in (as ours holds HU) and out: SimpleITK's lowest-memory configuration.
  "${PIN[@]}" "$TIME" -f "%e %U %S %M" -o "$1" "$PYTHON" crates/testkit/py/sitk_resample.py \
    "$SERIES_DIR" --spacing "$SPACING_MM" --threads "$THREADS" --read-type int16 --out-type int16
}

# SimpleITK's own step timings, from the JSON that sitk_resample.py prints.
SITK_STEPS='
import json, sys
r = json.load(sys.stdin)
size = "x".join(map(str, r["output"]["size"]))
print("read_s=%.3f resample_s=%.3f output=%s" % (r["read_s"], r["resample_s"], size))
'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# record TAG NAME STEPS: one line of the run table, and the raw figures for the summary.
record() {
  local wall user sys kb cpu
  read -r wall user sys kb <"$tmp/t"
  cpu=$(awk "BEGIN { print $user + $sys }")
  printf '%-3s %-17s %7s %6.2f %12.1f  %s\n' "$i" "$2" "$wall" "$cpu" \
    "$(awk "BEGIN { print $kb * 1024 / 1e6 }")" "$3"
  echo "$1 $wall $cpu $kb $3" >>"$tmp/all"
}

echo "study: $SERIES_DIR, $files files, $bytes bytes; $THREADS threads; ${PIN[*]:-(not pinned)}"
echo "load before: $(uptime)"
echo "run tool              wall_s  cpu_s  peak_rss_MB  steps"
for i in $(seq 1 "$RUNS"); do
  ours "$tmp/t" --common-only >"$tmp/out"
  record common "spinewatch common" "$(grep '^RESULT' "$tmp/out" | sed 's/^RESULT //')"
  ours "$tmp/t" >"$tmp/out"
  record full "spinewatch full" "$(grep '^RESULT' "$tmp/out" | sed 's/^RESULT //')"
  sitk "$tmp/t" >"$tmp/out"
  record sitk simpleitk "$("$PYTHON" -c "$SITK_STEPS" <"$tmp/out")"
done
echo "load after: $(uptime)"
import_s=$( { "$TIME" -f "%e" "$PYTHON" -c "import SimpleITK, numpy" ; } 2>&1 | tail -n 1)
raw=$((files * 512 * 512 * 2))
"$PYTHON" - "$tmp/all" "$raw" "$import_s" <<'PY'
import statistics, sys

raw, import_s = int(sys.argv[2]), float(sys.argv[3])
runs = {}
for line in open(sys.argv[1]):
    tag, wall, cpu, kb, *steps = line.split()
    kv = dict(s.split("=", 1) for s in steps if "=" in s)
    runs.setdefault(tag, []).append(
        {"wall": float(wall), "cpu": float(cpu), "rss": int(kb) * 1024, **kv}
    )


def med(tag, key):
    return statistics.median(float(r[key]) for r in runs[tag])


print(f"raw volume: {raw} bytes ({raw / 1e6:.1f} MB); python + SimpleITK import: {import_s} s")
names = (
    ("common", "spinewatch common part"),
    ("sitk", "SimpleITK"),
    ("full", "spinewatch full chain"),
)
for tag, name in names:
    w, c, m = med(tag, "wall"), med(tag, "cpu"), med(tag, "rss")
    print(
        f"{name:23} median wall {w:.3f} s, CPU {c:.2f} s, "
        f"peak RSS {m / 1e6:.0f} MB = {m / raw:.2f} x raw"
    )
print(
    "common part, SimpleITK / spinewatch (medians): "
    f"wall {med('sitk', 'wall') / med('common', 'wall'):.1f} x, "
    f"CPU {med('sitk', 'cpu') / med('common', 'cpu'):.1f} x, "
    f"peak RSS {med('common', 'rss') / med('sitk', 'rss'):.2f} (spinewatch / SimpleITK)"
)
print(
    "full chain (not like for like: SimpleITK does no spine or reformat): "
    f"SimpleITK common / spinewatch full wall {med('sitk', 'wall') / med('full', 'wall'):.1f} x"
)
steps = ("scan_s", "sort_s", "decode_s", "resample_s", "locate_s", "reformat_s", "total_s")
print("spinewatch steps, full-chain runs (medians): "
      + ", ".join(f"{k} {med('full', k):.3f}" for k in steps))
print("spinewatch steps, common-only runs (medians): "
      + ", ".join(f"{k} {med('common', k):.3f}" for k in ("decode_s", "resample_s", "common_s")))
print(
    f"SimpleITK steps (medians): read_s {med('sitk', 'read_s'):.3f}, "
    f"resample_s {med('sitk', 'resample_s'):.3f}"
)
PY
