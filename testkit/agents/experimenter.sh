#!/bin/sh
# An experimenter (composed for the experiment-mode tests, not recorded from a real agent): each
# implementation call makes one change to `loops.txt`, the loop count `bench.sh` runs, in a known
# order by iteration — better (30% fewer loops), worse (30% more), neutral (a note, the count
# unchanged), better again — commits it with the idea as its subject line, and ends with the
# `IDEA:` line the experiment prompt asks for. Every prompt it is sent is kept in
# `$LOOP_RUN_DIR/seen/` so a test can check what it was told. Reviews are approved.
prompt=$(cat)
if [ "$LOOP_PHASE" = review ]; then
  echo "One measured change."
  echo "APPROVED"
  exit 0
fi
mkdir -p "$LOOP_RUN_DIR/seen"
printf '%s\n' "$prompt" > "$LOOP_RUN_DIR/seen/prompt-$LOOP_ITERATION.txt"
n=$(cat loops.txt)
case "$LOOP_ITERATION" in
  1) n=$((n * 7 / 10)); idea="run 30% fewer loops" ;;
  2) n=$((n * 13 / 10)); idea="run 30% more loops" ;;
  3) echo "a note that changes nothing measured" >> notes.txt; idea="add a note" ;;
  4) n=$((n * 7 / 10)); idea="run 30% fewer loops again" ;;
  *) echo "No idea left."; echo "IDEA: none"; exit 0 ;;
esac
echo "$n" > loops.txt
git add -A >/dev/null && git commit -qm "$idea" >/dev/null
echo "Changed the loop count to $n."
echo "IDEA: $idea"
