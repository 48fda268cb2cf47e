#!/bin/sh
# An agent for the primes project (`projects/primes/`, a Python prime counter measured by
# `bench.py`; composed for the experiment-mode walkthrough, not recorded from a real agent): each
# implementation call makes the iteration's change of `projects/primes/changes/` for real — odd
# numbers only (better), divmod (worse), a docstring (neutral), a sieve (much better), a sieve
# that stops one short (wrong: the tests catch it), bytearray.count (better) — commits it with
# its idea as the subject and ends with the `IDEA:` line the prompt asks for. Every prompt is
# kept in `$LOOP_RUN_DIR/seen/`. Reviews approve.
prompt=$(cat)
if [ "$LOOP_PHASE" = review ]; then
  echo "One change to count_primes."
  echo "APPROVED"
  exit 0
fi
changes="$(cd "$(dirname "$0")/../projects/primes/changes" && pwd)"
mkdir -p "$LOOP_RUN_DIR/seen"
printf '%s\n' "$prompt" > "$LOOP_RUN_DIR/seen/prompt-$LOOP_ITERATION.txt"
idea=$(awk -F '\t' -v n="$LOOP_ITERATION" '$1 == n { print $2 }' "$changes/ideas")
if [ -z "$idea" ]; then
  echo "No idea left."
  echo "IDEA: none"
  exit 0
fi
cp "$changes/$LOOP_ITERATION.py" primes.py
git add primes.py >/dev/null && git commit -qm "$idea" >/dev/null
echo "Changed count_primes: $idea."
echo "IDEA: $idea"
