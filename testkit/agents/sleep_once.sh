#!/bin/sh
# Sleeps (to be paused or canceled) on its first call, then behaves like one_task.sh.
if [ ! -f "$LOOP_RUN_DIR/slept" ]; then
  touch "$LOOP_RUN_DIR/slept"
  echo "thinking"
  sleep 300
fi
exec sh "$(dirname "$0")/one_task.sh"
