#!/bin/sh
# Starts a grandchild that would outlive it, then hangs.
cat > /dev/null
sleep 300 &
echo $! > "$LOOP_RUN_DIR/grandchild.pid"
echo "working on it"
sleep 300
