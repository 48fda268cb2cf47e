#!/bin/sh
# Writes the environment it was given to $LOOP_RUN_DIR/agent-env, then behaves like one_task.sh.
env > "$LOOP_RUN_DIR/agent-env"
exec sh "$(dirname "$0")/one_task.sh"
