"""An empty `checkpoint list` of one VM names the host that said "none".

Before, `checkpoint list --vm WEB02` of a VM without checkpoints printed
"No checkpoints on WEB02." (and `/checkpoint list WEB02` the same): which
host was asked could not be told, and for a clustered VM the node asked
is the one found to have it now, not necessarily the inventory's.

What is proven here, over real WinRM against the emulated demo hosts:
- the CLI names the standalone VM's host ("asked HV03"), and a clustered
  VM's node with its cluster ("asked HV02, the node of prod-cluster that
  has it"), following it when it live-migrates; `--json` keeps its shape;
  a listing whose scope is the host itself says nothing more;
- the Slack answer to `/checkpoint list WEB02`, through the real Bolt app,
  says the same in valid Block Kit (parsed by slack_sdk).
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.devtools.emulator.pointing import EMULATOR_PASSWORD_ENV
from bot.inventory import demo_inventory_path, load_inventory
from tests.cli_support import emulated_estate, invoke
from tests.slack_support import block_problem, running_bot

ENV = {EMULATOR_PASSWORD_ENV: "Passw0rd!", "CHECKPOINT_BOT_SOCKET": "off"}
WEB02_ON = "No checkpoints on WEB02 (asked {node}, the node of prod-cluster that has it).\n"


def test_an_empty_list_of_one_vm_names_the_host_asked(tmp_path: Path) -> None:
    def listed(*args: str) -> str:
        done = invoke(tmp_path, "-c", "bot.yaml", "checkpoint", "list", *args, env=ENV)
        assert done.returncode == 0, done.stderr
        return done.stdout

    web02 = load_inventory(demo_inventory_path()).vm("WEB02")
    with emulated_estate(tmp_path, env=ENV) as fleet:
        assert listed("--vm", "STG-WEB01") == "No checkpoints on STG-WEB01 (asked HV03).\n"
        assert listed("STG-WEB01") == "No checkpoints on STG-WEB01 (asked HV03).\n"
        assert listed("--vm", "WEB02") == WEB02_ON.format(node="HV02")
        # The scope is the host: it names itself.
        assert listed("HV03") == "No checkpoints on HV03.\n"
        assert json.loads(listed("--vm", "WEB02", "--json")) == {
            "checkpoints": [],
            "unreachable": [],
        }
        # An administrator live-migrates it: the node that has it now is asked.
        fleet.host("HV02").live_migrate(web02.vm_id, "HV01")
        assert listed("--vm", "WEB02") == WEB02_ON.format(node="HV01")


def test_slack_names_the_host_asked_too(tmp_path: Path) -> None:
    with running_bot(tmp_path, emulated=True) as bot:
        for text, said in (
            ("list WEB02", WEB02_ON.format(node="HV02").strip()),
            ("list STG-WEB01", "No checkpoints on STG-WEB01 (asked HV03)."),
        ):
            _, key = bot.slack.command(text)
            calls = bot.api.wait_for(lambda cs, key=key: any(c.method == key for c in cs), 20)
            body = next(c.body for c in calls if c.method == key)
            assert block_problem(body) is None, body
            sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
            assert sections[0].startswith(f"{said} Take one with "), sections
