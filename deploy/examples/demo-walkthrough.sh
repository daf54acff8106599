#!/usr/bin/env bash
# `make demo-cli`: the product end to end on the embedded defaults — SQLite in
# var/, the in-process job queue, the simulated Hyper-V hosts of
# deploy/examples/demo-hosts.yaml (inventory: deploy/examples/demo-inventory.yaml)
# and the shipped guardrail policy. Each step prints the command it runs and
# who runs it.
set -uo pipefail
cd "$(dirname "$0")/../.."
bot=.venv/bin/checkpoint-bot
unset CHECKPOINT_BOT_CONFIG

as() {
  local user=$1 shown="" arg
  shift
  for arg in "$@"; do
    case $arg in *" "*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
  done
  printf '\n\033[1m%s$ checkpoint-bot%s\033[0m\n' "$user" "$shown"
  # stderr joins stdout so progress lines stay in order; the demo banner was shown once.
  CHECKPOINT_BOT_USER=$user "$bot" "$@" 2>&1 | grep -v 'DEMO MODE'
  local rc=${PIPESTATUS[0]}
  [ $rc -eq 0 ] || printf '\033[2m(exit code %s)\033[0m\n' "$rc"
  return 0
}

"$bot" inventory show >/dev/null  # shows the demo-mode banner once
as alice checkpoint create WEB01 --reason "KB5044284 cumulative update" --ttl 24h
change=$(CHECKPOINT_BOT_USER=alice "$bot" checkpoint list --vm WEB01 --json 2>/dev/null \
  | .venv/bin/python -c 'import json,sys; rows=[r for r in json.load(sys.stdin)["checkpoints"] if r["change_state"]=="active"]; print(rows[-1]["change_ref"] if rows else "")')
as alice checkpoint list --vm WEB01
as alice checkpoint create CORP-DC01 --reason "monthly patching"
as alice checkpoint create SQL01 --reason "SQL CU 14"
as alice checkpoint create LAB-DC01 --reason "lab patching"
as alice policy explain REPL-APP01 --action rollback
as alice checkpoint create WEB1 --reason "typo in the name"
if [ -n "$change" ]; then
  as alice checkpoint rollback "$change"
  as alice change approve "$change"
  as bob change list
  as bob change approve "$change"
  as alice checkpoint extend "$change" 12h
  as alice checkpoint merge "$change"
  as alice change show "$change"
fi
as alice audit export --format csv --output var/audit.csv
printf '\nState is kept in var/ (delete it to start over). Try: %s --help\n' "$bot"
