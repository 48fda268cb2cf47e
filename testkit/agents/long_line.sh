#!/bin/sh
# Speaks Claude Code's stream-json; its answer's result line is over 1 MiB long (a long
# summary), ending with the completion token once the plan is done, else doing one task.
cat > /dev/null
echo '{"type":"system","subtype":"init","session_id":"long-line","model":"opus","cwd":".","tools":[]}'
if grep -q -- '- \[ \]' "$LOOP_PLAN_PATH"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$LOOP_PLAN_PATH"
  git add -A >/dev/null && git commit -qm "task" >/dev/null
  last="DONE: one task"
else
  last="<promise>COMPLETE</promise>"
fi
filler=$(head -c 1100000 /dev/zero | tr '\0' a)
printf '{"type":"result","subtype":"success","is_error":false,"result":"%s\\n%s","session_id":"long-line","num_turns":2,"total_cost_usd":0.25,"usage":{"input_tokens":10,"output_tokens":5}}\n' "$filler" "$last"
