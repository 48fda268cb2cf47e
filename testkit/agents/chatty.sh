#!/bin/sh
# Prints numbered lines slowly, then does one task like one_task.sh.
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  echo "line $i"
  sleep 0.02
done
exec sh "$(dirname "$0")/one_task.sh"
