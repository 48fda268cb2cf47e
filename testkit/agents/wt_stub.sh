#!/bin/sh
# Stands in for Worktrunk's `wt`, doing with plain git what `wt` would. Copy it into a test's
# temp dir: every call appends its arguments, one line per call, to wt.log beside the copy.
# $WORKTRUNK_CONFIG_PATH, when set, goes to wt.config-path. A file `fail-switch` beside it makes
# `switch` fail as `wt` does, with a message on stderr; a file `slow-remove` makes `remove` take
# two seconds, as a large worktree does.
here=$(cd "$(dirname "$0")" && pwd)
echo "$*" >> "$here/wt.log"
[ -z "$WORKTRUNK_CONFIG_PATH" ] || echo "$WORKTRUNK_CONFIG_PATH" > "$here/wt.config-path"

case "$1" in
  --version)
    # A file `hang` beside it makes it never answer, as a `wt` waiting on a prompt would.
    [ -e "$here/hang" ] && sleep 60
    echo "wt 0.0.0-stub"
    ;;
  switch)
    shift
    create=no branch= base=
    while [ $# -gt 0 ]; do
      case "$1" in
        --create) create=yes ;;
        --base) base=$2; shift ;;
        --format) shift ;;
        -*) ;;
        *) branch=$1 ;;
      esac
      shift
    done
    if [ -e "$here/fail-switch" ]; then
      echo "Error: hook post-create failed for $branch" >&2
      exit 3
    fi
    root=$(git rev-parse --show-toplevel) || exit 1
    path="$(dirname "$root")/$(basename "$root").$(echo "$branch" | tr '/\\' '--')"
    # Progress before the JSON line, as hooks may print.
    echo "Creating worktree for $branch"
    if [ "$create" = yes ]; then
      git worktree add -q -b "$branch" "$path" "$base" >&2 || exit 1
      action=created
    else
      [ -d "$path" ] || git worktree add -q "$path" "$branch" >&2 || exit 1
      action=existing
    fi
    printf '{"action":"%s","branch":"%s","path":"%s","created_branch":true}\n' \
      "$action" "$branch" "$path"
    ;;
  remove)
    branch=$2
    [ -e "$here/slow-remove" ] && sleep 2
    path=$(git worktree list --porcelain | awk -v b="branch refs/heads/$branch" '
      /^worktree / { p = substr($0, 10) }
      $0 == b { print p }')
    [ -n "$path" ] || { echo "Error: no worktree for $branch" >&2; exit 1; }
    git worktree remove --force "$path"
    ;;
  step)
    [ "$2" = copy-ignored ] || exit 2
    ;;
  *)
    echo "wt stub: unknown command $1" >&2
    exit 2
    ;;
esac
