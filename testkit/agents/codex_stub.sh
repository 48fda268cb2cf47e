#!/bin/sh
# Speaks `codex exec --json`. ./.stub-codex says what the call does: `task` (the default: one
# plan task, an agent_message and a turn.completed with usage as codex-cli 0.144 prints it),
# `fail` (the error and turn.failed a real codex-cli 0.144.0 printed for an unsupported model,
# tests/data/agents/real/codex/turn_failed_unsupported_model_400.jsonl), `long` (as `task`, the
# agent_message a single line over 1 MiB: a 1,100,000-character summary, then the answer) or
# `flood` (as `task`, after 257 MiB of output lines that are no events, as a command's output
# echoed to stdout would be) or `window:<used %>:<reset epoch s>` (as `task`, and the session's
# rollout under $CODEX_HOME/sessions gets a token_count with the account's windows). A model
# Codex does not serve (`-m opus`) fails as `fail` does.
prompt=$(cat)
. "$(dirname "$0")/references.sh"
check_references "$prompt"
mode=$(cat .stub-codex 2>/dev/null || echo task)
# As strict as the real CLI about its model: `-m` with a name Codex does not serve (Claude's
# `opus`, say) is refused with the 400 a real codex-cli 0.144.0 printed for an unknown model.
model=
while [ $# -gt 0 ]; do
  case "$1" in -m|--model) model=$2; shift ;; esac
  shift
done
case "$model" in
  ''|gpt-*|o3*|o4*|codex-*) ;;
  *) mode=fail ;;
esac
if [ "$mode" = flood ]; then
  line=$(head -c 4095 /dev/zero | tr '\0' x)
  yes "$line" | head -c 269484032
fi
if [ "$mode" = fail ]; then
  cat "$(dirname "$0")/../../loop-core/tests/data/agents/real/codex/turn_failed_unsupported_model_400.jsonl"
  exit 1
fi
echo '{"type":"thread.started","thread_id":"019f90b8-96af-7582-a50f-e158e39fd20a"}'
case "$mode" in
  window:*)
    # The session's rollout, where codex-cli records the account's windows (its stdout has
    # none): a token_count event in the shape of codex-cli 0.58's, window:<used %>:<reset s>.
    spec=${mode#window:}
    dir="${CODEX_HOME:-$HOME/.codex}/sessions/$(date -u +%Y/%m/%d)"
    mkdir -p "$dir"
    printf '%s\n' "{\"timestamp\":\"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)\",\"type\":\"event_msg\",\"payload\":{\"type\":\"token_count\",\"info\":null,\"rate_limits\":{\"primary\":{\"used_percent\":${spec%%:*},\"window_minutes\":300,\"resets_at\":${spec#*:}},\"secondary\":{\"used_percent\":10.0,\"window_minutes\":10080,\"resets_at\":${spec#*:}}}}}" \
      >> "$dir/rollout-$(date -u +%Y-%m-%dT%H-%M-%S)-019f90b8-96af-7582-a50f-e158e39fd20a.jsonl"
    mode=task
    ;;
esac
echo '{"type":"turn.started"}'
echo '{"type":"item.started","item":{"id":"item_0","type":"command_execution","command":"bash -lc ls","aggregated_output":"","exit_code":null,"status":"in_progress"}}'
if [ "$LOOP_PHASE" = review ]; then
  answer=APPROVED
elif grep -q -- '- \[ \]' "$LOOP_PLAN_PATH"; then
  sed -i '0,/- \[ \]/s//- [x]/' "$LOOP_PLAN_PATH"
  echo "codex $LOOP_ITERATION" >> work.txt
  git add -A >/dev/null && git commit -qm "codex task" >/dev/null
  answer="DONE: task $LOOP_ITERATION"
else
  answer='<promise>COMPLETE</promise>'
fi
if [ "$mode" = long ]; then
  summary=$(head -c 1100000 /dev/zero | tr '\0' a)
  printf '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"%s\\n%s"}}\n' "$summary" "$answer"
else
  echo "{\"type\":\"item.completed\",\"item\":{\"id\":\"item_1\",\"type\":\"agent_message\",\"text\":\"$answer\"}}"
fi
echo '{"type":"turn.completed","usage":{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122,"reasoning_output_tokens":64}}'
