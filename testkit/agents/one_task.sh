#!/bin/sh
# A well-behaved agent: one plan task per implementation call, approves every review.
prompt=$(cat)
. "$(dirname "$0")/references.sh"
check_references "$prompt"
if [ "$LOOP_PHASE" = review ]; then
  echo "The change does what the task asks."
  echo "APPROVED"
  exit 0
fi
plan="$LOOP_PLAN_PATH"
if grep -q -- '- \[ \]' "$plan"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$plan"
  echo "work $LOOP_ITERATION" >> work.txt
  git add -A >/dev/null && git commit -qm "task of iteration $LOOP_ITERATION" >/dev/null
  echo "Implemented the next task."
  echo "DONE: task $LOOP_ITERATION"
else
  echo "Every task is done."
  echo "<promise>COMPLETE</promise>"
fi
