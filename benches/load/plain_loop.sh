#!/bin/sh
# The baseline of the orchestration-overhead benchmark (benches/benches/overhead.rs): the same
# work as a loop run with reviewer=true and one verification command, done by a plain shell loop.
#
# Per iteration: the agent as implementer (prompt on stdin, output to a log file), the agent as
# reviewer (same), the verification command with `sh -c` (output to a log file), then a grep
# of the implementer's log for the completion token and a grep of the plan for a pending task.
#
# usage: plain_loop.sh AGENT WORKDIR PLAN PROMPT REVIEW_PROMPT LOG_DIR MAX_ITERATIONS VERIFY_CMD
set -u
agent=$1 workdir=$2 plan=$3 prompt=$4 review_prompt=$5 logs=$6 max=$7 verify=$8
cd "$workdir" || exit 2
mkdir -p "$logs" || exit 2
export LOOP_PLAN_PATH="$plan"
i=0
while [ "$i" -lt "$max" ]; do
  i=$((i + 1))
  export LOOP_ITERATION="$i"
  LOOP_PHASE=implementation "$agent" < "$prompt" > "$logs/iter-$i-implementation.log" 2>&1 || exit 1
  LOOP_PHASE=review "$agent" < "$review_prompt" > "$logs/iter-$i-review.log" 2>&1 || exit 1
  sh -c "$verify" > "$logs/iter-$i-verification.log" 2>&1 || exit 1
  if grep -q '<promise>COMPLETE</promise>' "$logs/iter-$i-implementation.log" \
     && ! grep -q -- '- \[ \]' "$plan"; then
    echo "$i"
    exit 0
  fi
done
exit 1
