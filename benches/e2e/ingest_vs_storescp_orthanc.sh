#!/usr/bin/env bash
# Ingest side by side: the same synthetic 400-slice 512x512 study (the one
# volume_vs_simpleitk.sh uses) pushed by dcmtk storescu over loopback, with 1 association and
# with 4 in parallel (the files split in 4 sets, 4 storescu processes), to
#
#   (a) spinewatch serve   durable spool: fsync of every instance before C-STORE success,
#                          plus a journal row per instance (SQLite);
#   (b) dcmtk storescp     --fork, files written to a temp dir, NO fsync;
#   (c) Orthanc            its own config in a temp dir: SyncStorageArea (fsync of every
#                          file, Orthanc's default) plus its SQLite index.
#
# Fairness: every dcmtk program, and Orthanc (dcmtk inside), runs with TCP_NODELAY=1 (dcmtk
# leaves Nagle on otherwise; spinewatch sets TCP_NODELAY itself); every receiver announces
# the same maximum PDU (64 KiB, spinewatch's default); every receiver starts empty for every
# run; the files are read from a warm page cache.
#
# Also spinewatch's end-to-end time: from the last C-STORE's success (storescu's exit) to
# the study's outcome in /metrics, minus the quiet period (--quiet-period-secs 1), as
# studies per hour on this machine. The scheduler looks for quiet studies every 0.5 s, so
# that figure includes up to 0.5 s of scheduling slack.
#
# And where spinewatch's time per instance goes: the mean of each step of
# `spinewatch_ingest_store_step_seconds` (lock, create, queue, write, sync, verify, commit,
# record; total = from the last data-set PDV to the response), from its /metrics after the
# transfer.
#
#   cargo build --release -p spinewatch && benches/e2e/ingest_vs_storescp_orthanc.sh
#   RUNS=5 benches/e2e/ingest_vs_storescp_orthanc.sh            # runs of each, interleaved
#   STUDY=/tmp/s400 SPINEWATCH=/other/target/release/spinewatch benches/e2e/...
#   RECEIVERS="spinewatch storescp" benches/e2e/...             # a subset (default: all three)
#   TMPDIR=/mnt/other benches/e2e/...   # receivers' files on another file system (mktemp -d)
#
# Peak RSS of the receiver: VmHWM of the server process at the end of the transfer
# (spinewatch: before the analysis starts; its peak including the analysis is reported
# with the end-to-end figures). storescp forks a process per association, so its figure is
# the largest sum of VmRSS over the storescp processes, sampled every 0.1 s (shared pages
# counted once per process). Needs dcmtk, Orthanc (scripts/setup --tests), curl, python3
# and ONNX Runtime (scripts/setup-ort).
set -euo pipefail
cd "$(dirname "$0")/../.."

RUNS=${RUNS:-3}
STUDY=${STUDY:-target/bench-e2e/study-400}
SPINEWATCH=${SPINEWATCH:-target/release/spinewatch}
ORTHANC=${ORTHANC:-$(command -v Orthanc || echo /usr/sbin/Orthanc)}
RECEIVERS=${RECEIVERS:-spinewatch storescp orthanc}
QUIET_S=1
PDU=65536
PARALLEL=4
export TCP_NODELAY=1 # for every dcmtk program started below, and for Orthanc

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}
[ -x "$SPINEWATCH" ] || die "no $SPINEWATCH: run 'cargo build --release -p spinewatch' first"
for tool in storescu storescp echoscu; do
  command -v "$tool" >/dev/null || die "needs dcmtk's $tool (Debian dcmtk): run scripts/setup --tests"
done
[ -x "$ORTHANC" ] || die "needs Orthanc at $ORTHANC (Debian orthanc): run scripts/setup --tests"
command -v curl >/dev/null || die "needs curl (Debian curl)"
command -v python3 >/dev/null || die "needs python3"

WORK=$(mktemp -d)
SERVER="" # the receiver running now, stopped on exit
cleanup() {
  if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The model is found by absolute path, so that the config works from any directory.
cat >"$WORK/spinewatch.toml" <<EOF
[model]
manifest = "$PWD/models/vertebra-fracture/manifest.toml"
EOF
"$SPINEWATCH" --config "$WORK/spinewatch.toml" --data-dir "$WORK/check" serve --check-config \
  >/dev/null 2>"$WORK/check.log" \
  || die "spinewatch serve cannot start (ONNX Runtime: scripts/setup-ort): $(tail -n 3 "$WORK/check.log")"

if [ ! -f "$STUDY/ground_truth.json" ]; then
  rm -rf "$STUDY"
  "$SPINEWATCH" synth --out "$STUDY" --seed 1 --age 72 --fracture L1:2:wedge --slices 400 \
    >/dev/null
fi
mapfile -t FILES < <(find "$STUDY" -name '*.dcm' | sort)
N=${#FILES[@]}
[ "$N" -gt 0 ] || die "no .dcm files in $STUDY"
BYTES=$(cat "${FILES[@]}" | wc -c) # also warms the page cache
cat "${FILES[@]}" >/dev/null

# Where the machine has more than 2 cores, the receivers get cores 0-1 (the target
# deployment has 2) and the senders the rest; otherwise everything shares all cores.
PIN_SERVER=()
PIN_CLIENT=()
if command -v taskset >/dev/null && [ "$(nproc)" -gt 2 ]; then
  PIN_SERVER=(taskset -c 0,1)
  PIN_CLIENT=(taskset -c "2-$(($(nproc) - 1))")
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
now() { echo "$EPOCHREALTIME"; }
# vmhwm PID: peak resident set of one process, kB.
vmhwm() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# rss_tree_sampler PID OUT: until OUT.stop exists, the largest sum of VmRSS (kB) over PID
# and its children, sampled every 0.1 s with bash builtins only (no process per sample).
rss_tree_sampler() {
  local max=0 sum kids p key value rest
  while [ ! -e "$2.stop" ]; do
    sum=0
    kids=""
    read -r kids 2>/dev/null <"/proc/$1/task/$1/children" || true
    for p in "$1" $kids; do
      while read -r key value rest; do
        if [ "$key" = VmRSS: ]; then
          sum=$((sum + value))
          break
        fi
      done 2>/dev/null <"/proc/$p/status" || true
    done
    [ "$sum" -gt "$max" ] && max=$sum
    sleep 0.1
  done
  echo "$max" >"$2"
}
# wait_for WHAT SECONDS COMMAND...: polls COMMAND every 0.1 s.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "$what did not start within $2 s"
    sleep 0.1
  done
}
stop() {
  kill -TERM "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  SERVER=""
}

# send AE PORT ASSOCIATIONS LOGPREFIX: pushes the study; every storescu must succeed.
send() {
  local ae=$1 port=$2 k=$3 i j rc=0 pids=()
  for ((i = 0; i < k; i++)); do
    local part=()
    for ((j = i; j < N; j += k)); do part+=("${FILES[j]}"); done
    "${PIN_CLIENT[@]}" storescu -aet BENCH -aec "$ae" -R -pdu "$PDU" 127.0.0.1 "$port" \
      "${part[@]}" >"$4-storescu-$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || rc=1; done
  if [ "$rc" != 0 ]; then
    tail -n 5 "$4"-storescu-*.log >&2
    die "storescu failed against $ae"
  fi
}

# metric URL NAME: the sum of a Prometheus metric's samples (all label sets).
metric() {
  curl -sf "$1/metrics" | awk -v n="$2" '$1 == n || index($1, n "{") == 1 { s += $2 } END { print s + 0 }'
}

# steps URL: spinewatch's mean time per instance of each store step, ms, as
# step=ms,step=ms,... (from the step histogram's _sum and _count).
steps() {
  curl -sf "$1/metrics" | awk '
    match($1, /^spinewatch_ingest_store_step_seconds_(sum|count)\{step="[a-z]+"\}$/) {
      split($1, a, "\""); kind = ($1 ~ /_sum\{/) ? "sum" : "count"
      v[a[2], kind] = $2; names[a[2]] = 1
    }
    END {
      out = ""
      for (n in names) if (v[n, "count"] > 0)
        out = out (out == "" ? "" : ",") n "=" sprintf("%.3f", 1000 * v[n, "sum"] / v[n, "count"])
      print (out == "" ? "-" : out)
    }'
}

# One run of one receiver with one association count; appends a line to $WORK/all:
#   receiver associations wall_s peak_rss_kB [e2e_s e2e_rss_kB outcome analysis_s steps]
run_spinewatch() {
  local k=$1 d="$WORK/sw" line port http t0 t1 t2 rss rss_e2e
  rm -rf "$d"
  mkdir -p "$d"
  "${PIN_SERVER[@]}" "$SPINEWATCH" --config "$WORK/spinewatch.toml" --data-dir "$d/data" serve \
    --dicom-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --quiet-period-secs "$QUIET_S" \
    >"$d/out" 2>"$d/log" &
  local pid=$!
  SERVER=$pid
  wait_for "spinewatch serve" 60 grep -q '^spinewatch serve:' "$d/out"
  line=$(head -n 1 "$d/out")
  port=$(sed -E 's/.* on 127\.0\.0\.1:([0-9]+),.*/\1/' <<<"$line")
  http=$(sed -E 's|.*HTTP on (http://[0-9.:]+),.*|\1|' <<<"$line")
  t0=$(now)
  send SPINEWATCH "$port" "$k" "$d/run"
  t1=$(now)
  rss=$(vmhwm "$pid")
  local breakdown
  breakdown=$(steps "$http")
  [ "$(metric "$http" spinewatch_instances_received_total)" = "$N" ] \
    || die "spinewatch received $(metric "$http" spinewatch_instances_received_total) of $N"
  until [ "$(metric "$http" spinewatch_studies_total)" = 1 ]; do
    kill -0 "$pid" 2>/dev/null || die "spinewatch serve exited: $(tail -n 5 "$d/log")"
    awk -v a="$(now)" -v b="$t1" 'BEGIN { exit !(a - b > 300) }' \
      && die "no study outcome 300 s after the transfer: $(tail -n 5 "$d/log")"
    sleep 0.1
  done
  t2=$(now)
  rss_e2e=$(vmhwm "$pid")
  local outcome analysis
  outcome=$(curl -sf "$http/metrics" | sed -nE 's/^spinewatch_studies_total\{outcome="([a-z_]+)"\} 1$/\1/p')
  analysis=$(metric "$http" 'spinewatch_stage_seconds_sum{stage="total"}')
  stop
  echo "spinewatch $k $(awk "BEGIN { print $t1 - $t0 }") $rss" \
    "$(awk "BEGIN { print $t2 - $t1 - $QUIET_S }") $rss_e2e $outcome $analysis $breakdown" \
    >>"$WORK/all"
  rm -rf "$d"
}

run_storescp() {
  local k=$1 d="$WORK/scp" port t0 t1
  rm -rf "$d"
  mkdir -p "$d/out"
  port=$(free_port)
  "${PIN_SERVER[@]}" storescp --fork -aet STORESCP -pdu "$PDU" -od "$d/out" "$port" \
    >"$d/log" 2>&1 &
  local pid=$!
  SERVER=$pid
  wait_for storescp 30 echoscu -aec STORESCP 127.0.0.1 "$port"
  rss_tree_sampler "$pid" "$d/rss" &
  local sampler=$!
  t0=$(now)
  send STORESCP "$port" "$k" "$d/run"
  t1=$(now)
  touch "$d/rss.stop"
  wait "$sampler"
  local got
  got=$(find "$d/out" -type f | wc -l)
  [ "$got" = "$N" ] || die "storescp wrote $got of $N files"
  stop
  echo "storescp $k $(awk "BEGIN { print $t1 - $t0 }") $(cat "$d/rss")" >>"$WORK/all"
  rm -rf "$d"
}

run_orthanc() {
  local k=$1 d="$WORK/orthanc" http_port dicom_port t0 t1 rss
  rm -rf "$d"
  mkdir -p "$d"
  http_port=$(free_port)
  dicom_port=$(free_port)
  # Everything in the temp dir: no plugins, no Lua, nothing from /etc/orthanc.
  cat >"$d/orthanc.json" <<EOF
{
  "Name": "bench",
  "StorageDirectory": "$d/storage",
  "IndexDirectory": "$d/storage",
  "Plugins": [],
  "LuaScripts": [],
  "HttpPort": $http_port,
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomAet": "ORTHANC",
  "DicomPort": $dicom_port,
  "MaximumPduLength": $PDU,
  "SyncStorageArea": true,
  "StorageCompression": false,
  "SaveJobs": false
}
EOF
  (cd "$d" && exec "${PIN_SERVER[@]}" "$ORTHANC" orthanc.json >"$d/log" 2>&1) &
  local pid=$!
  SERVER=$pid
  wait_for Orthanc 60 curl -sf "http://127.0.0.1:$http_port/system"
  t0=$(now)
  send ORTHANC "$dicom_port" "$k" "$d/run"
  t1=$(now)
  rss=$(vmhwm "$pid")
  local got
  got=$(curl -sf "http://127.0.0.1:$http_port/statistics" | python3 -c 'import json, sys; print(json.load(sys.stdin)["CountInstances"])')
  [ "$got" = "$N" ] || die "Orthanc stored $got of $N instances"
  stop
  echo "orthanc $k $(awk "BEGIN { print $t1 - $t0 }") $rss" >>"$WORK/all"
  rm -rf "$d"
}

echo "study: $STUDY, $N files, $BYTES bytes; $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')); ${PIN_SERVER[*]:-(not pinned)}"
echo "work dir: $WORK on $(df --output=source,fstype "$WORK" | tail -n 1 | tr -s ' ')"
echo "load before: $(uptime)"
for i in $(seq 1 "$RUNS"); do
  for k in 1 "$PARALLEL"; do
    for receiver in $RECEIVERS; do
      "run_$receiver" "$k"
      echo "run $i: $(tail -n 1 "$WORK/all")"
    done
  done
done
echo "load after: $(uptime)"

python3 - "$WORK/all" "$N" "$BYTES" "$RUNS" "$RECEIVERS" <<'PY'
import statistics, sys

path, n, size, runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
receivers = sys.argv[5].split()
rows = {}
for line in open(path):
    f = line.split()
    rows.setdefault((f[0], int(f[1])), []).append(f[2:])


def med(key, i):
    return statistics.median(float(r[i]) for r in rows[key])


names = {
    "spinewatch": "spinewatch serve (fsync per instance)",
    "storescp": "dcmtk storescp (no fsync)",
    "orthanc": "Orthanc (fsync per instance)",
}
print(f"\nmedians of {runs} run(s); {n} instances, {size / 1e6:.1f} MB")
print("\n| receiver | associations | wall s | MB/s | instances/s | peak RSS MB |")
print("|---|---|---|---|---|---|")
for k in sorted({k for _, k in rows}):
    for r in receivers:
        w, rss = med((r, k), 0), med((r, k), 1)
        note = " (sum of forks, sampled)" if r == "storescp" else ""
        print(f"| {names[r]} | {k} | {w:.2f} | {size / 1e6 / w:.0f} | {n / w:.0f} "
              f"| {rss / 1024:.0f}{note} |")

if "spinewatch" not in receivers:
    sys.exit(0)

order = ["lock", "create", "queue", "write", "sync", "verify", "commit", "record", "total"]
print("\n| spinewatch: mean ms per instance, by step (median of runs) | "
      + " | ".join(order) + " |")
print("|---|" + "---|" * len(order))
for k in sorted({k for r, k in rows if r == "spinewatch"}):
    per_run = [dict(kv.split("=") for kv in r[6].split(",")) for r in rows[("spinewatch", k)]
               if len(r) > 6 and r[6] != "-"]
    cells = []
    for step in order:
        xs = [float(d[step]) for d in per_run if step in d]
        cells.append(f"{statistics.median(xs):.2f}" if xs else "-")
    print(f"| {k} association(s) | " + " | ".join(cells) + " |")

sw = rows[("spinewatch", 1)] + rows.get(("spinewatch", 4), [])
e2e = [float(r[2]) for r in sw]
analysis = statistics.median(float(r[5]) for r in sw)
rss = max(float(r[3]) for r in sw)
outcomes = sorted({r[4] for r in sw})
ingest = med(("spinewatch", 1), 0)
e2e_med = statistics.median(e2e)
print("\n| spinewatch end to end (every spinewatch run) | value |")
print("|---|---|")
print(f"| last C-STORE success -> outcome, quiet period excluded (median) "
      f"| {e2e_med:.2f} s (runs: {', '.join(f'{x:.2f}' for x in e2e)}) |")
print(f"| of which the analysis itself (stage total, median) | {analysis:.2f} s |")
print(f"| studies per hour, analysis only | {3600 / e2e_med:.0f} |")
print(f"| studies per hour incl. 1-association ingest, one study at a time "
      f"| {3600 / (e2e_med + ingest):.0f} |")
print(f"| peak RSS incl. analysis (max over runs) | {rss / 1024:.0f} MB |")
print(f"| outcome | {', '.join(outcomes)} |")
PY
