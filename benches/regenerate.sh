#!/usr/bin/env bash
# Regenerates every table of BENCHMARKS.md in one go: the criterion benchmarks of the store and
# the orchestrator (each prints its table rows, `| … |`, on stdout) and the daemon load tests
# (benches/load/run.sh), then rewrites the generated section of BENCHMARKS.md between its
# markers, stamped with the commit, the date, the machine and its load before and after.
#
# usage: benches/regenerate.sh [--quick] [--only NAME]
#   --quick: small sizes and 3 rounds, to check the script itself (figures not for keeping).
#   --only NAME: one table only (a bench: append replay rebuild postgres reads overhead; or a load
#     test: scale binaries output fanout cli memory takeover), put in place of the same table of
#     the generated section with a line saying when and at which commit it was rerun; the other
#     tables stay as they were.
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
    --only) only=${2:?--only needs a table name}; shift ;;
    *) echo "usage: benches/regenerate.sh [--quick] [--only NAME]" >&2; exit 2 ;;
  esac
  shift
done
# Whether this run makes the table of `$1`.
selected() { [[ -z $only || $only == "$1" ]]; }
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
  scale_runs=(10 20 100 1000)
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

bench() {
  local name=$1 title=$2 header=$3
  selected "$name" || return 0
  local log="$out/$name.txt"
  echo "regenerate: cargo bench --bench $name" >&2
  # A failed benchmark leaves its table saying so instead of ending the whole regeneration.
  cargo bench -q -p loop-benches --bench "$name" -- "${criterion[@]}" >"$log" 2>"$out/$name.stderr" ||
    echo "regenerate: $name failed, see $out/$name.stderr" >&2
  table "$title" "cargo bench -p loop-benches --bench $name -- ${criterion[*]}" "$header" "$log"
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

load() {
  local name=$1 title=$2 header=$3
  shift 3
  selected "$name" || return 0
  local log="$out/load-$name.txt"
  echo "regenerate: benches/load/run.sh $name $*" >&2
  benches/load/run.sh "$name" "$@" >"$log" 2>"$out/load-$name.stderr" ||
    echo "regenerate: load $name failed, see $out/load-$name.stderr" >&2
  table "$title" "benches/load/run.sh $name $*" "$header" "$log"
}

if selected scale; then
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

if selected takeover; then
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

# One table: it replaces the table of the same heading in the generated section, followed by a
# line saying it was rerun alone (so it is not read as made with the tables around it).
if [[ -n $only ]]; then
  title=$(sed -n 's/^### //p' "$rows" | head -1)
  if [[ -z $title ]]; then
    echo "regenerate: no table is named $only" >&2
    exit 2
  fi
  block="$out/block.md"
  {
    tail -n +2 "$rows"
    echo
    echo "Rerun alone by \`benches/regenerate.sh --only $only\`$([[ $quick == yes ]] && echo ' --quick (small sizes: not for keeping)') at commit $commit on $(date -u +%Y-%m-%d), load average $load_before before, $load_after after; raw outputs were in $out."
  } >"$block"
  if ! awk -v file="$block" -v heading="### $title" '
    /^<!-- generated: begin/ { inside = 1 }
    /^<!-- generated: end/ { inside = 0 }
    inside && $0 == heading { while ((getline line < file) > 0) print line; skip = 1; found = 1; next }
    skip && (/^### / || /^## / || /^<!-- generated: end/) { skip = 0; print "" }
    skip { next }
    { print }
    END { if (!found) exit 3 }
  ' BENCHMARKS.md >"$out/BENCHMARKS.md"; then
    echo "regenerate: the generated section has no table \"$title\" to replace" >&2
    exit 3
  fi
  cp "$out/BENCHMARKS.md" BENCHMARKS.md
  echo "regenerate: the table \"$title\" of BENCHMARKS.md rewritten; raw outputs in $out" >&2
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
