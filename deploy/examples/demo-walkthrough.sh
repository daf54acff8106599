#!/usr/bin/env bash
# `make demo`: the product end to end on the embedded defaults — SQLite in
# var/, the in-process job queue, the simulated Hyper-V estate of
# deploy/examples/demo-inventory.yaml. Each step prints the command it runs.
set -uo pipefail
cd "$(dirname "$0")/../.."
bot=.venv/bin/checkpoint-bot
export CHECKPOINT_BOT_USER="${CHECKPOINT_BOT_USER:-demo-admin}"
unset CHECKPOINT_BOT_CONFIG

step() {
  local shown="" arg
  for arg in "$@"; do
    case $arg in *" "*) shown+=" \"$arg\"" ;; *) shown+=" $arg" ;; esac
  done
  printf '\n\033[1m$ checkpoint-bot%s\033[0m\n' "$shown"
  "$bot" "$@"
  local rc=$?
  [ $rc -eq 0 ] || printf '\033[2m(exit code %s)\033[0m\n' "$rc"
  return 0
}

step checkpoint create WEB01 --reason "KB5044284 cumulative update" --ttl 24h
change=$("$bot" checkpoint list --vm WEB01 --json 2>/dev/null \
  | .venv/bin/python -c 'import json,sys; rows=[r for r in json.load(sys.stdin)["checkpoints"] if r["change_state"]=="active"]; print(rows[-1]["change_ref"] if rows else "")')
step checkpoint list --vm WEB01
step checkpoint create CORP-DC01 --reason "monthly patching"
step checkpoint create SQL01 --reason "SQL CU 14"
step checkpoint create WEB02 --reason "IIS config change" --ttl 30d
step checkpoint create WEB1 --reason "typo in the name"
if [ -n "$change" ]; then
  step checkpoint rollback "$change"
  step checkpoint merge "$change"
  step change show "$change"
fi
step audit export --format csv --output var/audit.csv
printf '\nState is kept in var/ (delete it to start over). Try: %s --help\n' "$bot"
