#!/bin/sh
# Sleeps a random short time (0.05–0.35 s), then behaves like one_task.sh.
ms=$(( $(od -An -N2 -tu2 /dev/urandom) % 300 + 50 ))
sleep "$(printf '0.%03d' "$ms")"
exec sh "$(dirname "$0")/one_task.sh"
