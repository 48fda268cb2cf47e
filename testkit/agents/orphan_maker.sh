#!/bin/sh
# Until it has been called ./.orphan-rounds times (default 3), each implementation call starts a
# "tool" in the background that waits 4 s and then commits (as a build or a test an agent ran
# would go on), records both pids in $LOOP_RUN_DIR/pids ("<call> <agent pid> <tool pid>"), and
# then hangs, to be killed with the daemon. Later calls behave like one_task.sh.
cat > /dev/null
rounds=$(cat .orphan-rounds 2>/dev/null || echo 3)
calls="$LOOP_RUN_DIR/orphan-calls"
n=$(( $(cat "$calls" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$calls"
if [ "$LOOP_PHASE" = implementation ] && [ "$n" -le "$rounds" ]; then
  ( sleep 4; echo "late $n" >> late.txt; git add -A >/dev/null 2>&1; git commit -qm "late commit of call $n" >/dev/null 2>&1 ) &
  echo "$n $$ $!" >> "$LOOP_RUN_DIR/pids"
  echo "working on it"
  sleep 300
fi
exec sh "$(dirname "$0")/one_task.sh" < /dev/null
