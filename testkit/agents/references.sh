# Sourced by the stub agents: reads @references in a prompt as Claude Code does. `@` and the
# non-blank characters after it are the path, punctuation included, so `@specs/plan.md.` names
# a file `specs/plan.md.` that does not exist and nothing is attached. Where the real CLI would
# quietly leave the file out, the stub stops with exit 3, so a prompt that writes a reference
# that way fails the test that sends it.
check_references() {
  for word in $(printf '%s\n' "$1" | grep -o '@[^[:space:]]*'); do
    path=${word#@}
    [ -e "$path" ] && continue
    bare=$(printf '%s' "$path" | sed 's/[].,;:!?)"'"'"']*$//')
    if [ "$bare" != "$path" ] && [ -e "$bare" ]; then
      echo "stub: $word does not resolve: Claude Code reads the punctuation after it as part of the path" >&2
      exit 3
    fi
  done
}
