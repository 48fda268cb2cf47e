#!/bin/sh
# The daemon load tests of the quality bars (scale, output, fan-out, CLI) against the real
# `loopd` binary, built in release (the `bench` profile). Figures on stdout; see BENCHMARKS.md.
#
# usage: benches/load/run.sh [scale|output|fanout|cli|memory|takeover|binaries|all] [extra flags]
#   binaries runs binaries_load (loopctl exec and loopd against the bare processes); the others
#   loopd_load.
#   e.g. benches/load/run.sh fanout --subscribers 200
# Scratch files go to $LOOP_BENCH_DIR (else the system temp dir).
set -eu
cd "$(dirname "$0")/../.."
what=${1:-all}
[ $# -gt 0 ] && shift
# The `bench` profile (release, with line tables), as `cargo bench` builds: the load tests and the
# criterion benchmarks of one regeneration share the crates whose features agree (a separate
# `release` build of the whole workspace took most of an hour on the 2-core machine; crates whose
# features the benches' dev-dependencies change are still built twice). Its binaries land in
# `release/` all the same.
cargo build --profile bench -q -p loopd -p loopctl -p loop-benches --bins
target=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin="$target/release/loopd_load"
# 1,000 SSE subscribers need 1,000 sockets on each side, plus the daemon's own files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "machine: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), ulimit -n $(ulimit -n)"
run() {
  echo "\$ loopd_load $*"
  "$bin" "$@"
}
case "$what" in
  scale) run scale "$@" ;;
  output) run output "$@" ;;
  fanout) run fanout "$@" ;;
  cli) run cli "$@" ;;
  memory) run memory "$@" ;;
  takeover) run takeover "$@" ;;
  binaries)
    echo "\$ binaries_load $*"
    "$target/release/binaries_load" "$@"
    ;;
  all)
    run scale
    for i in 1 2 3; do run output; done
    run output --line-bytes 100
    for i in 1 2 3; do run fanout; done
    run cli
    run memory
    for i in 1 2 3; do run takeover; done
    "$target/release/binaries_load"
    ;;
  *) echo "usage: $0 [scale|output|fanout|cli|memory|takeover|binaries|all]" >&2; exit 2 ;;
esac
