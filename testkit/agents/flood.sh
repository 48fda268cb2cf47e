#!/bin/sh
# Prints 8 MB of random bytes (invalid UTF-8, hardly any newlines), then one task.
head -c 8000000 /dev/urandom
echo
exec sh "$(dirname "$0")/one_task.sh"
