#!/bin/sh
# Speaks Claude Code's stream-json. What each call does is read from ./.stub-plan in the working
# directory, one line per call: `overloaded`, `limit:<epoch seconds>`, `linger` (a task, then
# no exit), or `task` (the default once the lines run out): do one plan task, or claim
# completion when none is left. Every successful call reports a cost of 0.6 (or ./.stub-cost).
# Postmortem analyses (LOOP_PHASE=postmortem) are answered apart, as ./.stub-analysis says.
cat > /dev/null
echo '{"type":"system","subtype":"init","session_id":"stub-session","model":"opus","cwd":".","tools":[]}'
if [ "$LOOP_PHASE" = naming ]; then
  # The naming call: ./.stub-name says `fail`, `hang`, or the name to propose.
  name=$(cat .stub-name 2>/dev/null || echo quiet-harbor-lights)
  case "$name" in
    fail) echo "naming broke" >&2; exit 1 ;;
    hang) sleep 300 ;;
  esac
  printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"$name\",\"session_id\":\"stub-session\",\"num_turns\":1,\"total_cost_usd\":0.01}"
  exit 0
fi
if [ "$LOOP_PHASE" = postmortem ]; then
  # An analysis call: ./.stub-analysis may say `<analysis>=fail` or `<analysis>=hang`; any
  # other analysis answers with its name, the run id and the first line of its prompt file.
  mode=$(sed -n "s/^$LOOP_ANALYSIS=//p" .stub-analysis 2>/dev/null)
  case "$mode" in
    fail) echo "analysis broke" >&2; exit 1 ;;
    hang) sleep 300 ;;
  esac
  echo "$LOOP_ANALYSIS" >> "$LOOP_RUN_DIR/analysis-calls"
  first=$(head -n 1 "$LOOP_PROMPT_FILE" | tr -d '"\\')
  printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"# $LOOP_ANALYSIS of $LOOP_RUN_ID\\n\\n$first\",\"session_id\":\"stub-session\",\"num_turns\":1,\"total_cost_usd\":0.05}"
  exit 0
fi
calls="$LOOP_RUN_DIR/claude-calls"
n=$(cat "$calls" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$calls"
mode=$(sed -n "${n}p" .stub-plan 2>/dev/null)
linger=no
if [ "$mode" = linger ]; then linger=yes; mode=task; fi
cost=$(cat .stub-cost 2>/dev/null || echo 0.6)
[ -n "$mode" ] || mode=task
case "$mode" in
  overloaded)
    echo '{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"API Error: Repeated 529 Overloaded errors"}]},"is_api_error_message":true}'
    echo '{"type":"result","subtype":"success","is_error":true,"result":"API Error: Repeated 529 Overloaded errors","session_id":"stub-session","num_turns":1,"total_cost_usd":0,"api_error_status":529}'
    exit 1
    ;;
  limit:*)
    echo "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"result\":\"Claude AI usage limit reached|${mode#limit:}\",\"session_id\":\"stub-session\",\"num_turns\":1,\"total_cost_usd\":0}"
    exit 1
    ;;
esac

if [ "$LOOP_PHASE" = review ]; then
  answer='APPROVED'
elif grep -q -- '- \[ \]' "$LOOP_PLAN_PATH"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$LOOP_PLAN_PATH"
  echo "call $n" >> work.txt
  git add -A >/dev/null && git commit -qm "task $n" >/dev/null
  answer="DONE: task $n"
else
  answer='<promise>COMPLETE</promise>'
fi
echo "{\"type\":\"assistant\",\"message\":{\"model\":\"opus\",\"content\":[{\"type\":\"text\",\"text\":\"Working.\"}]}}"
echo "{\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"tool_result\",\"content\":\"Claude AI usage limit reached|1\"}]}}"
printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"Working.\\n$answer\",\"session_id\":\"stub-session\",\"num_turns\":3,\"total_cost_usd\":$cost,\"usage\":{\"input_tokens\":1000,\"output_tokens\":200,\"cache_read_input_tokens\":50}}"
# Some versions print their result and then never exit.
if [ "$linger" = yes ]; then sleep 300; fi
