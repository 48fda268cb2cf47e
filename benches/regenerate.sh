#!/usr/bin/env bash
# Regenerates every table of BENCHMARKS.md in one go: the criterion benchmarks of the store and
# the orchestrator (each prints its table rows, `| … |`, on stdout) and the daemon load tests
# (benches/load/run.sh), then rewrites the generated section of BENCHMARKS.md between its
# markers, stamped with the commit, the date, the machine and its load before and after.
#
# usage: benches/regenerate.sh [--quick] [--only NAME[,NAME...]]
#   --quick: small sizes and 3 rounds, to check the script itself (figures not for keeping).
#   --only: run only the named tables (append replay rebuild postgres reads overhead
#     overhead-tmpfs scale binaries output fanout cli memory takeover) and replace just those
#     in the generated section, each stamped with its own commit, date and load; the other
#     tables stay as they were. For a bench whose code changed, without an hour of the rest.
#   LOOP_BENCH_SCALE_RUNS (e.g. "10 20"): the scale test's sizes instead of 10 20 100 1000.
# Raw outputs stay in target/bench-results/<UTC time>/ for reading the prose figures from.
# Takes about 40 minutes on the 2-CPU machine of BENCHMARKS.md (the 1M-event rebuilds, SQLite
# and PostgreSQL, and the 1,000-run scale test are most of it).
set -euo pipefail
cd "$(dirname "$0")/.."

quick=no
only=
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=yes ;;
    --only) only=${2:?--only needs a list of names}; shift ;;
    --only=*) only=${1#--only=} ;;
    *) echo "usage: $0 [--quick] [--only NAME[,NAME...]]" >&2; exit 2 ;;
  esac
  shift
done
# Whether the table NAME is to be made in this run.
want() { [[ -z $only || ,$only, == *,$1,* ]]; }
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out="target/bench-results/$stamp"
mkdir -p "$out"
rows="$out/rows.md"
: >"$rows"

if [[ $quick == yes ]]; then
  export LOOP_BENCH_REPLAY_EVENTS=20000 LOOP_BENCH_REBUILD_EVENTS=20000 LOOP_BENCH_PG_EVENTS=5000 LOOP_BENCH_PAIRS=3
  export LOOP_BENCH_PG_REBUILD_EVENTS=20000 LOOP_BENCH_OVERHEAD_TASKS=10 LOOP_BENCH_OVERHEAD_ROUNDS=3
  criterion=(--warm-up-time 1 --measurement-time 2)
  scale_runs=(10 20 50)
  load_sizes=(--mib 10)
  binaries=(--tasks 5 --rounds 3)
else
  export LOOP_BENCH_PAIRS=${LOOP_BENCH_PAIRS:-7}
  criterion=(--warm-up-time 2 --measurement-time 10)
  read -ra scale_runs <<<"${LOOP_BENCH_SCALE_RUNS:-10 20 100 1000}"
  load_sizes=()
  binaries=()
fi

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
commit=$(git rev-parse --short HEAD)
git diff --quiet HEAD -- . ':!BENCHMARKS.md' || commit="$commit (with uncommitted changes)"

# One table: a heading, what produced it, its header, then the rows the command printed.
table() {
  local title=$1 command=$2 header=$3 log=$4
  {
    echo
    echo "### $title"
    echo
    echo "\`$command\`"
    echo
    echo "$header"
    echo "$header" | sed 's/[^|]\+/---/g'
    grep '^| ' "$log" || echo "| (no figure: see $log) |"
  } >>"$rows"
}

# One criterion benchmark; TABLE names it for --only when it is not the bench's own name, and
# PREFIX goes before the command (an environment setting the table depends on).
bench() {
  local name=$1 title=$2 header=$3 table_name=${4:-$1} prefix=${5:-}
  want "$table_name" || return 0
  local log="$out/$table_name.txt"
  echo "regenerate: ${prefix:+$prefix }cargo bench --bench $name" >&2
  # A failed benchmark leaves its table saying so instead of ending the whole regeneration.
  env $prefix cargo bench -q -p loop-benches --bench "$name" -- "${criterion[@]}" >"$log" 2>"$out/$table_name.stderr" ||
    echo "regenerate: $name failed, see $out/$table_name.stderr" >&2
  table "$title" "${prefix:+$prefix }cargo bench -p loop-benches --bench $name -- ${criterion[*]}" "$header" "$log"
}

store_header='| benchmark | events | store | raw baseline | store/raw: median (range, rounds) |'
bench append "Append" "$store_header"
bench replay "Replay" "$store_header"
bench rebuild "Rebuild" "$store_header"
bench postgres "PostgreSQL store (a fresh local server, fsync on)" "$store_header"
for extra in reads overhead; do
  if [[ -f benches/benches/$extra.rs ]]; then
    header_file="benches/benches/$extra.header"
    header=$(cat "$header_file" 2>/dev/null || echo "$store_header")
    bench "$extra" "$(tr '[:lower:]' '[:upper:]' <<<"${extra:0:1}")${extra:1}" "$header"
  fi
done
# The same orchestration on tmpfs, where a new file and an fsync cost nothing: what is left
# there is the runtime's CPU and its processes, not the disk.
bench overhead "Overhead on tmpfs" "$(cat benches/benches/overhead.header)" overhead-tmpfs LOOP_BENCH_DIR=/dev/shm

load() {
  local name=$1 title=$2 header=$3
  shift 3
  want "$name" || return 0
  local log="$out/load-$name.txt"
  echo "regenerate: benches/load/run.sh $name $*" >&2
  benches/load/run.sh "$name" "$@" >"$log" 2>"$out/load-$name.stderr" ||
    echo "regenerate: load $name failed, see $out/load-$name.stderr" >&2
  table "$title" "benches/load/run.sh $name $*" "$header" "$log"
}

if want scale; then
  scale_log="$out/load-scale.txt"
  : >"$scale_log"
  for runs in "${scale_runs[@]}"; do
    echo "regenerate: benches/load/run.sh scale --runs $runs" >&2
    benches/load/run.sh scale --runs "$runs" >>"$scale_log" 2>>"$out/load-scale.stderr" ||
      echo "regenerate: scale --runs $runs failed" >&2
  done
  table "Scale: concurrent runs, the agent sleeps 1 s a call" \
    "benches/load/run.sh scale --runs N  (N = ${scale_runs[*]})" \
    '| runs | completed | all ended | the bare agents | wall over bare, per step | daemon CPU per step | peak RSS | VmHWM |' \
    "$scale_log"
fi
load binaries "Through the binaries: loopctl exec and loopd, a script agent that commits, against the same processes bare" \
  '| command | plan | wall per step | the same processes bare, per step | over bare, per step: median (range, rounds) |' "${binaries[@]}"
load output "Output: one agent printing a lot" \
  '| printed | captured | live SSE | baseline: pipe | baseline: file | memory growth |' "${load_sizes[@]}"
load fanout "Fan-out: subscribers on one run" \
  '| subscribers | every event to all | p50 | p99 | RSS with all connected |'
load cli "CLI: listing runs" \
  '| runs in the log | list (newest 50) | list --limit 0 | curl GET /runs?limit=50 | loopctl --version |'
load memory "Daemon memory under many clients" \
  '| what | RSS before | peak RSS | RSS 15 s after | database files open |' "${load_sizes[@]}"

if want takeover; then
  takeover_log="$out/load-takeover.txt"
  : >"$takeover_log"
  for round in 1 2 3; do
    echo "regenerate: benches/load/run.sh takeover (round $round)" >&2
    benches/load/run.sh takeover >>"$takeover_log" 2>>"$out/load-takeover.stderr" ||
      echo "regenerate: takeover round $round failed" >&2
  done
  table "Cluster: a killed node's runs taken over (PostgreSQL, two nodes, 3 rounds)" \
    "benches/load/run.sh takeover" \
    '| what | lease (the floor) | first claim after the kill | last claim | beyond the lease |' \
    "$takeover_log"
fi

load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# --only: each table made replaces the table of the same title in the generated section (a
# `###` or `####` heading down to the next heading), stamped with this run; a title not there
# yet goes before "Not regenerated in this run", or else at the section's end.
if [[ -n $only ]]; then
  [[ -s $rows ]] || { echo "regenerate: --only $only made no table" >&2; exit 2; }
  grep -q '^<!-- generated: begin' BENCHMARKS.md || { echo "regenerate: --only needs a generated section" >&2; exit 2; }
  stamp_line="Regenerated alone (\`benches/regenerate.sh --only $only\`$([[ $quick == yes ]] && echo ', --quick: not for keeping')) at commit $commit on $(date -u +%Y-%m-%d), load average $load_before before, $load_after after; raw outputs were in $out."
  awk -v file="$rows" -v stamp="$stamp_line" '
    function title_of(line) { sub(/^#+ /, "", line); return line }
    # The tables not put in place of an older one: before "Not regenerated", or at the end.
    function flush_new(   i, t) {
      for (i = 1; i <= count; i++) {
        t = order[i]
        if (!(t in done) && !(t in current)) { printf "%s\n", block[t]; done[t] = 1 }
      }
    }
    BEGIN {
      while ((getline line < file) > 0) {
        if (line ~ /^### /) { t = title_of(line); order[++count] = t; pending = ""; block[t] = "### " t "\n\n" stamp "\n"; continue }
        if (t != "" && line != "") { block[t] = block[t] pending line "\n"; pending = "" }
        else if (t != "") pending = pending "\n"
      }
    }
    # First pass: the titles among the current tables (those before "Not regenerated").
    FNR == NR {
      if (/^<!-- generated: begin/) scan = 1
      if (/^<!-- generated: end/) scan = 0
      if (scan && /^(##|###|####) /) {
        if (title_of($0) == "Not regenerated in this run") scan = 0
        else current[title_of($0)] = 1
      }
      next
    }
    /^<!-- generated: begin/ { inside = 1; print; next }
    inside && /^<!-- generated: end/ { flush_new(); inside = 0; skip = 0; print; next }
    inside && /^(##|###|####) / {
      skip = 0
      t = title_of($0)
      if (t == "Not regenerated in this run") { old = 1; flush_new() }
      else if ((t in block) && !old) { printf "%s\n", block[t]; done[t] = 1; skip = 1; next }
      # An old table of a title made now: dropped, the new one is above.
      else if (t in block) { skip = 1; next }
    }
    !skip { print }
  ' BENCHMARKS.md BENCHMARKS.md >"$out/BENCHMARKS.md"
  cp "$out/BENCHMARKS.md" BENCHMARKS.md
  echo "regenerate: the tables of --only $only replaced in BENCHMARKS.md; raw outputs in $out" >&2
  exit 0
fi

generated="$out/generated.md"
{
  echo "<!-- generated: begin (benches/regenerate.sh rewrites this section; edit the script, not the tables) -->"
  echo
  echo "## Figures"
  echo
  echo "Generated by \`benches/regenerate.sh\`$([[ $quick == yes ]] && echo ' --quick (small sizes: not for keeping)') at commit $commit on $(date -u +%Y-%m-%d)."
  echo "Machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -g | awk '/^Mem:/ {print $2}') GiB,"
  echo "$(df -T "${LOOP_BENCH_DIR:-${TMPDIR:-/tmp}}" | awk 'NR==2 {print $2}') under the benchmark files; load average $load_before before, $load_after after."
  echo "Ratios are the median of alternated rounds with their range; raw outputs were in $out."
  cat "$rows"
  echo
  echo "<!-- generated: end -->"
} >"$generated"

# Replace the generated section (or put it after the title when there is none yet).
if grep -q '^<!-- generated: begin' BENCHMARKS.md; then
  awk -v file="$generated" '
    /^<!-- generated: begin/ { while ((getline line < file) > 0) print line; skip = 1; next }
    /^<!-- generated: end/ { skip = 0; next }
    !skip { print }
  ' BENCHMARKS.md >"$out/BENCHMARKS.md"
else
  awk -v file="$generated" '
    NR == 1 { print; print ""; while ((getline line < file) > 0) print line; next }
    { print }
  ' BENCHMARKS.md >"$out/BENCHMARKS.md"
fi
cp "$out/BENCHMARKS.md" BENCHMARKS.md
echo "regenerate: BENCHMARKS.md rewritten; raw outputs in $out" >&2
