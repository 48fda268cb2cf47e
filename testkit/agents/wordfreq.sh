#!/bin/sh
# An agent for the wordfreq project (`projects/wordfreq/`, a small Python package whose plan has
# four tasks): each implementation call does the plan's next task for real — it writes the
# task's files (`projects/wordfreq/task-N/`), runs the project's tests, ticks the box and
# commits — and prints what it does as Claude Code's tool lines (`● Tool(args)`, results under
# `  ⎿  `). Asked for changes after a review, it makes them (`projects/wordfreq/changes/`).
# Reviews approve, saying what was read. WORDFREQ_PACE (seconds, default 0) slows its lines,
# for a page watching it live.
prompt=$(cat)
. "$(dirname "$0")/references.sh"
check_references "$prompt"
project="$(cd "$(dirname "$0")/../projects/wordfreq" && pwd)"
pace=${WORDFREQ_PACE:-0}
say() {
  printf '%s\n' "$1"
  [ "$pace" = 0 ] || sleep "$pace"
}

if [ "$LOOP_PHASE" = review ]; then
  say "● Bash(git diff HEAD~1..HEAD --stat)"
  git diff HEAD~1..HEAD --stat | sed 's/^/  ⎿  /'
  say "● Bash(python3 -m unittest -q)"
  python3 -m unittest -q 2>&1 | grep -v '^$' | tail -n 2 | sed 's/^/  ⎿  /'
  if printf '%s' "$prompt" | grep -q "answers a person's review"; then
    say "Each requested change is made and has a test."
  else
    say "The change does what the task asks, with tests, and the box is ticked."
  fi
  say "APPROVED"
  exit 0
fi

plan="$LOOP_PLAN_PATH"
if printf '%s' "$prompt" | grep -q "asked for these changes"; then
  step=changes
  message="top: refuse a negative n, as asked in review"
  what="Made the requested changes."
elif grep -q -- '- \[ \]' "$plan"; then
  n=$(( $(grep -c -- '- \[x\]' "$plan") + 1 ))
  step="task-$n"
  message=$(grep -m1 -- '- \[ \]' "$plan" | sed 's/^- \[ \] //; s/`//g')
  what="Task $n is done."
else
  say "Every task of the plan is done and the tests pass."
  say "<promise>COMPLETE</promise>"
  exit 0
fi

say "I'll start by reading the spec, the plan and the code this touches."
say "● Read($LOOP_SPEC_PATH)"
say "  ⎿  Read $(wc -l < "$LOOP_SPEC_PATH") lines"
say "● Read(wordfreq/counter.py)"
say "  ⎿  Read $(wc -l < wordfreq/counter.py) lines"
for file in $(cd "$project/$step" && find . -type f | sed 's|^\./||' | sort); do
  if [ -e "$file" ]; then say "● Edit($file)"; else say "● Write($file)"; fi
  mkdir -p "$(dirname "$file")"
  cp "$project/$step/$file" "$file"
  say "  ⎿  $(wc -l < "$file") lines"
done
say "● Bash(python3 -m unittest -q)"
python3 -m unittest -q 2>&1 | grep -v '^$' | tail -n 2 | sed 's/^/  ⎿  /'
if [ "$step" != changes ]; then
  sed -i '0,/- \[ \]/s//- [x]/' "$plan"
  say "● Edit($plan)"
  say "  ⎿  ticked: $message"
fi
git add -A >/dev/null && git commit -qm "$message" >/dev/null
say "● Bash(git commit -m \"$message\")"
say "$what"
if [ "$step" = changes ]; then
  say "DONE: the requested changes"
else
  say "DONE: $message"
fi
