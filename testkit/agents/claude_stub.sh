#!/bin/sh
# Speaks Claude Code's stream-json. What each call does is read from ./.stub-plan in the working
# directory, one line per call:
#   task        do one plan task, or claim completion when none is left (the default once the
#               lines run out); every successful call reports a cost of 0.6 (or ./.stub-cost)
#   linger      a task, then no exit
#   exit1       a task, then exit status 1
#   overloaded  a 529 after retries
#   limit:<s>   the usage limit, resetting at epoch second <s> (also: .stub-account, below)
#   network     ECONNREFUSED, the result line real 2.1.285 printed (tests/data/agents/real)
#   max_turns   error_max_turns after 31 turns and $1.0062815, as a real CLI printed it (its
#               modelUsage shortened: opus's entry holds the call's own totals, haiku's none)
#   overage     a rate_limit_event `rejected` that overage served, then a task
#   tool        a Bash tool call, then a task
#   window:<u>:<s>  a task, after a rate_limit_event allowed_warning: utilization <u>, reset <s>
#   quiet:<s>   <s> seconds of silence, then a task
#   hang        init, then silence for 300 s (a step to pause or kill)
#   limit_real  the usage limit as a real CLI printed it on a first request ("You've hit your
#               session limit · resets 12:30pm (Asia/Tokyo)", exit 1), verbatim from
#               loop-core/tests/data/agents/real/claude/usage_limit_session_first_request_tokyo
#   overloaded_real  a 529 after the CLI's own retries, verbatim from a real run (exit 1):
#               loop-core/tests/data/agents/real/claude/overloaded_529_after_retries
#   escapes     a task whose text carries terminal escape sequences (colour, a window title)
# In a repository holding .stub-experiment, a task is experimenter.sh's change instead of a plan's.
# Sessions as the real CLI has them: `--session-id X` starts X, `--resume X` goes on with X and
# fails as the real CLI does ("No conversation found") when X was never started. Each
# implementation or review call appends `[--resume ]<session> <phase>` to
# $LOOP_RUN_DIR/claude-args once its session and count are recorded.
# Postmortem analyses (LOOP_PHASE=postmortem) are answered apart, as ./.stub-analysis says.
prompt=$(cat)
. "$(dirname "$0")/references.sh"
check_references "$prompt"
session=stub-session
resume=
while [ $# -gt 0 ]; do
  case "$1" in
    --session-id) session=$2; shift ;;
    --resume) session=$2; resume=yes; shift ;;
    --model) model=$2; shift ;;
  esac
  shift
done
if [ -n "$LOOP_RUN_DIR" ]; then
  sessions="$LOOP_RUN_DIR/claude-sessions"
  if [ -n "$resume" ] && ! grep -qx "$session" "$sessions" 2>/dev/null; then
    echo "--resume $session $LOOP_PHASE" >> "$LOOP_RUN_DIR/claude-args"
    echo "{\"type\":\"result\",\"subtype\":\"error_during_execution\",\"duration_ms\":0,\"duration_api_ms\":0,\"is_error\":true,\"num_turns\":0,\"stop_reason\":null,\"session_id\":\"$session\",\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"output_tokens\":0},\"permission_denials\":[],\"errors\":[\"No conversation found with session ID: $session\"]}"
    exit 1
  fi
  echo "$session" >> "$sessions"
fi
echo "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"$session\",\"model\":\"opus\",\"cwd\":\".\",\"tools\":[]}"
if [ "$LOOP_PHASE" = naming ]; then
  # The naming call: ./.stub-name says `fail`, `hang`, or the name to propose. Each is listed
  # in the run's naming-calls.
  [ -n "$LOOP_RUN_DIR" ] && echo "$LOOP_RUN_ID" >> "$LOOP_RUN_DIR/naming-calls"
  name=$(cat "${LOOP_WORKSPACE:-.}/.stub-name" 2>/dev/null || echo quiet-harbor-lights)
  case "$name" in
    fail) echo "naming broke" >&2; exit 1 ;;
    hang) sleep 300 ;;
  esac
  printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"$name\",\"session_id\":\"$session\",\"num_turns\":1,\"total_cost_usd\":0.01}"
  exit 0
fi
if [ "$LOOP_PHASE" = postmortem ]; then
  # An analysis call: ./.stub-analysis may say `<analysis>=fail` or `<analysis>=hang`; any
  # other analysis answers with its name, the run id and the first line of its prompt file.
  mode=$(sed -n "s/^$LOOP_ANALYSIS=//p" "${LOOP_WORKSPACE:-.}/.stub-analysis" 2>/dev/null)
  case "$mode" in
    fail) echo "analysis broke" >&2; exit 1 ;;
    hang) sleep 300 ;;
  esac
  echo "$LOOP_ANALYSIS" >> "$LOOP_RUN_DIR/analysis-calls"
  first=$(head -n 1 "$LOOP_PROMPT_FILE" | tr -d '"\\')
  printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"# $LOOP_ANALYSIS of $LOOP_RUN_ID\\n\\n$first\",\"session_id\":\"$session\",\"num_turns\":1,\"total_cost_usd\":0.05}"
  exit 0
fi
calls="$LOOP_RUN_DIR/claude-calls"
n=$(cat "$calls" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$calls"
# Written once the call's state is: a test that waits for this line may stop the call.
echo "${resume:+--resume }$session $LOOP_PHASE" >> "$LOOP_RUN_DIR/claude-args"
mode=$(sed -n "${n}p" .stub-plan 2>/dev/null)
linger=no
if [ "$mode" = linger ]; then linger=yes; mode=task; fi
status=0
if [ "$mode" = exit1 ]; then status=1; mode=task; fi
cost=$(cat .stub-cost 2>/dev/null || echo 0.6)
[ -n "$mode" ] || mode=task
# An account shared by every run whose workspace names the same directory in .stub-account:
# each call is listed in <dir>/calls, and while <dir>/limited holds an epoch second every call
# meets the usage limit resetting then (a test removes the file at the reset).
account=$(cat "${LOOP_WORKSPACE:-.}/.stub-account" 2>/dev/null)
# An account the daemon declares is where CLAUDE_CONFIG_DIR points: a directory a test marks
# with a `stub-account` file is such an account for the stub, with its calls and limit there.
if [ -n "$CLAUDE_CONFIG_DIR" ] && [ -f "$CLAUDE_CONFIG_DIR/stub-account" ]; then
  account=$CLAUDE_CONFIG_DIR
fi
# <dir>/limited-<window> (seven_day_opus, ...) holds an epoch second: the calls of that window's
# model family meet its limit, as real Claude Code reports a model's weekly limit (a
# `rate_limit_event` `rejected` naming the window, then the usage-limit result).
# <dir>/window holds "<share> <reset epoch s>": every served call reports the account's
# five-hour window with <dir>/used (the shares of the calls so far, which the test clears at
# the reset) grown by <share>.
scoped=
if [ -n "$account" ]; then
  echo "$LOOP_RUN_ID $LOOP_PHASE ${model:-}" >> "$account/calls"
  echo "start $LOOP_RUN_ID" >> "$account/order"
  if [ -f "$account/limited" ]; then mode="limit:$(cat "$account/limited")"; fi
  for file in "$account"/limited-*; do
    [ -f "$file" ] || continue
    family=${file##*_}
    case "${model:-opus}" in
      *"$family"*) scoped=${file##*/limited-}; mode="limit:$(cat "$file")" ;;
    esac
  done
  if [ -f "$account/window" ] && [ "${mode%%:*}" != limit ]; then
    read -r share reset < "$account/window"
    used=$(awk -v u="$(cat "$account/used" 2>/dev/null || echo 0)" -v s="$share" 'BEGIN { printf "%.4f", u + s }')
    echo "$used" > "$account/used"
    mode="window:$used:$reset"
  fi
fi
case "$mode" in
  overloaded)
    echo '{"type":"assistant","message":{"model":"<synthetic>","content":[{"type":"text","text":"API Error: Repeated 529 Overloaded errors"}]},"is_api_error_message":true}'
    echo '{"type":"result","subtype":"success","is_error":true,"result":"API Error: Repeated 529 Overloaded errors","session_id":"stub-session","num_turns":1,"total_cost_usd":0,"api_error_status":529}'
    exit 1
    ;;
  network)
    echo '{"type":"assistant","message":{"model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)"}]},"error":"server_error","is_api_error_message":true}'
    echo "{\"duration_api_ms\":0,\"stop_reason\":\"stop_sequence\",\"session_id\":\"$session\",\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":0},\"modelUsage\":{},\"permission_denials\":[],\"terminal_reason\":\"api_error\",\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"api_error_status\":null,\"duration_ms\":180512,\"num_turns\":1,\"result\":\"API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)\"}"
    exit 1
    ;;
  max_turns)
    echo "{\"type\":\"result\",\"subtype\":\"error_max_turns\",\"duration_ms\":153305,\"duration_api_ms\":114858,\"is_error\":true,\"num_turns\":31,\"stop_reason\":\"tool_use\",\"session_id\":\"$session\",\"total_cost_usd\":1.0062815,\"usage\":{\"input_tokens\":35,\"cache_creation_input_tokens\":33598,\"cache_read_input_tokens\":1218250,\"output_tokens\":7404},\"modelUsage\":{\"claude-haiku-4-5-20251001\":{},\"claude-opus-4-7[1m]\":{\"inputTokens\":35,\"outputTokens\":7404,\"cacheReadInputTokens\":1218250,\"cacheCreationInputTokens\":33598,\"costUSD\":1.0062815}},\"permission_denials\":[{\"tool_name\":\"Bash\"}],\"terminal_reason\":\"max_turns\",\"errors\":[\"Reached maximum number of turns (30)\"]}"
    exit 1
    ;;
  overage)
    echo '{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1774458000,"rateLimitType":"five_hour","overageStatus":"allowed","isUsingOverage":true}}'
    mode=task
    ;;
  window:*)
    # A served call that reports its window nearly used, in the shape of a real 2.1.220
    # `allowed_warning` (tests/data/agents/real/claude/success_allowed_warning_*): window:<u>:<s>.
    spec=${mode#window:}
    status_word=allowed_warning
    [ -n "$account" ] && [ -f "$account/window" ] && status_word=allowed
    echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"$status_word\",\"resetsAt\":${spec#*:},\"rateLimitType\":\"five_hour\",\"utilization\":${spec%%:*},\"isUsingOverage\":false,\"surpassedThreshold\":0.75},\"uuid\":\"1bb7f36a-a75d-4af1-bac0-1a31e465d4ca\",\"session_id\":\"$session\"}"
    mode=task
    ;;
  tool)
    echo '{"type":"assistant","message":{"id":"msg_tool","model":"opus","content":[{"type":"tool_use","id":"toolu_1","name":"Bash","input":{"command":"cargo test --quiet","description":"Run the tests"}}],"usage":{"input_tokens":10,"output_tokens":5}}}'
    mode=task
    ;;
  quiet:*)
    sleep "${mode#quiet:}"
    mode=task
    ;;
  hang)
    sleep 300
    ;;
  limit_real)
    cat "$(dirname "$0")/../../loop-core/tests/data/agents/real/claude/usage_limit_session_first_request_tokyo.jsonl"
    exit 1
    ;;
  overloaded_real)
    cat "$(dirname "$0")/../../loop-core/tests/data/agents/real/claude/overloaded_529_after_retries.jsonl"
    exit 1
    ;;
  escapes)
    printf '%s\n' '{"type":"assistant","message":{"model":"opus","content":[{"type":"text","text":"\u001b[31mred words\u001b[0m and \u001b]0;a new title\u0007a title"}]}}'
    mode=task
    ;;
  limit:*)
    if [ -n "$scoped" ]; then
      echo "{\"type\":\"rate_limit_event\",\"rate_limit_info\":{\"status\":\"rejected\",\"resetsAt\":${mode#limit:},\"rateLimitType\":\"$scoped\",\"isUsingOverage\":false}}"
    fi
    echo "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":true,\"result\":\"Claude AI usage limit reached|${mode#limit:}\",\"session_id\":\"$session\",\"num_turns\":1,\"total_cost_usd\":0}"
    exit 1
    ;;
esac

if [ "$LOOP_PHASE" = review ]; then
  answer='APPROVED'
elif [ -f .stub-experiment ]; then
  # An experiment's change (a repository holding .stub-experiment): experimenter.sh's, in its
  # known order by iteration, answered with its IDEA line.
  answer=$(printf '%s\n' "$prompt" | sh "$(dirname "$0")/experimenter.sh" | tail -n 1)
elif grep -q -- '- \[ \]' "$LOOP_PLAN_PATH"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$LOOP_PLAN_PATH"
  # $CLAUDE_STUB_WORK, when set, is the work itself: a script run in the worktree with the plan
  # just ticked (a test's stand-in for the edits a real agent makes).
  if [ -n "$CLAUDE_STUB_WORK" ]; then sh "$CLAUDE_STUB_WORK" || exit 4; fi
  echo "call $n" >> work.txt
  git add -A >/dev/null && git commit -qm "task $n" >/dev/null
  answer="DONE: task $n"
else
  answer='<promise>COMPLETE</promise>'
fi
echo "{\"type\":\"assistant\",\"message\":{\"model\":\"opus\",\"content\":[{\"type\":\"text\",\"text\":\"Working.\"}]}}"
echo "{\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"tool_result\",\"content\":\"Claude AI usage limit reached|1\"}]}}"
# The real CLI streams its last turn as an assistant message before the result line repeats it.
echo "{\"type\":\"assistant\",\"message\":{\"model\":\"opus\",\"content\":[{\"type\":\"text\",\"text\":\"$answer\"}]}}"
printf '%s\n' "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"Working.\\n$answer\",\"session_id\":\"$session\",\"num_turns\":3,\"total_cost_usd\":$cost,\"usage\":{\"input_tokens\":1000,\"output_tokens\":200,\"cache_read_input_tokens\":50}}"
# <dir>/order: when each call of the account started and when each served one answered.
[ -n "$account" ] && echo "end $LOOP_RUN_ID" >> "$account/order"
# Some versions print their result and then never exit; some exit 1 after it (an MCP server
# failing at shutdown).
if [ "$linger" = yes ]; then sleep 300; fi
exit "$status"
