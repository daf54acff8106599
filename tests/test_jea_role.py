"""The shipped JEA role capability (deploy/jea/CheckpointBot.psrc) lets
through every pipeline the bot sends: each cmdlet is visible, each
parameter it sends (and the one pipeline input binds) is listed, and each
value passes the role's ValidateSet / ValidatePattern. A role that lacked
one would refuse that operation on every host (JEA role capabilities:
https://learn.microsoft.com/powershell/scripting/security/remoting/jea/role-capabilities)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from bot.devtools.emulator.cmdlets import TABLE
from tests.sent_pipelines import PIPELINES

PSRC = Path(__file__).resolve().parents[1] / "deploy" / "jea" / "CheckpointBot.psrc"
# Visible in every RestrictedRemoteServer session without a role (the
# file's closing comment, and JEA's session configuration page).
DEFAULT_VISIBLE = {"select-object"}


# @{ Name = 'Param' } or @{ Name = 'Param'; ValidateSet = 'a', 'b' } or
# @{ Name = 'Param' <newline> ValidatePattern = '...' }: the values are
# single-quoted strings, '' escaping a quote (about_Quoting_Rules).
_PARAM = re.compile(
    r"@\{\s*Name\s*=\s*'(\w+)'\s*;?\s*"
    r"(?:(ValidateSet|ValidatePattern)\s*=\s*((?:'(?:[^']|'')*'\s*,?\s*)+))?\}"
)


def role() -> dict[str, dict[str, tuple[str, str] | None]]:
    """cmdlet (folded, no module) -> parameter (folded) -> its check, if any:
    ("set", "a|b") or ("pattern", regex)."""
    text = "\n".join(line.split("#", 1)[0] for line in PSRC.read_text().splitlines())
    visible: dict[str, dict[str, tuple[str, str] | None]] = {}
    for block in re.split(r"@\{\s*Name\s*=\s*'[\w.-]+\\", text)[1:]:
        name = block.split("'", 1)[0].casefold()
        params: dict[str, tuple[str, str] | None] = {}
        for param in _PARAM.finditer(block):
            quoted = [q.replace("''", "'") for q in re.findall(r"'((?:[^']|'')*)'", param[3] or "")]
            check: tuple[str, str] | None = None
            if param[2] == "ValidatePattern":
                check = ("pattern", quoted[0])
            elif param[2] == "ValidateSet":
                check = ("set", "|".join(quoted))
            params[param.group(1).casefold()] = check
        visible[name] = params
    return visible


def test_the_role_parses_to_what_it_lists() -> None:
    visible = role()
    assert "where-object" in visible and "get-process" not in visible
    assert visible["where-object"]["property"] == ("set", "Id")
    assert set(visible["restore-vmsnapshot"]) == {"vmsnapshot", "confirm", "passthru"}


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_every_pipeline_the_bot_sends_passes_the_role(name: str) -> None:
    visible = role()
    for index, cmd in enumerate(PIPELINES[name]):
        folded = cmd.name.casefold()
        if folded in DEFAULT_VISIBLE:
            continue
        assert folded in visible, f"{cmd.name} is not visible in the role"
        allowed = visible[folded]
        bound = TABLE[folded].pipeline
        previous = PIPELINES[name][index - 1] if index else None
        if previous is not None and not previous.end_of_statement and bound:
            assert bound.casefold() in allowed, f"{cmd.name} -{bound} (pipeline input)"
        for key, value in cmd.params:
            assert key.casefold() in allowed, f"{cmd.name} -{key}"
            check = allowed[key.casefold()]
            text = str(value)
            if check and check[0] == "set":
                assert text.casefold() in check[1].casefold().split("|"), (cmd.name, key)
            elif check:
                assert re.search(check[1], text), (cmd.name, key, text)


def test_the_role_refuses_what_the_bot_never_sends() -> None:
    visible = role()
    where = visible["where-object"]
    assert "filterscript" not in where and "match" not in where
    assert where["property"] == ("set", "Id")
    value = where["value"]
    assert value is not None and re.search(value[1], str(uuid.uuid4()))
    assert not re.search(value[1], "*") and not re.search(value[1], f"{uuid.uuid4()}; Remove-VM")
    for cmdlet in ("get-vm", "get-vmsnapshot", "restore-vmsnapshot", "remove-vmsnapshot"):
        assert "computername" not in visible[cmdlet] and "cimsession" not in visible[cmdlet]


def test_the_role_file_a_hidden_command_is_blamed_on_lists_it() -> None:
    """A refusal names this file as the role that lists the command: it
    must be this file, and it must list Get-CimInstance, the command whose
    absence leaves every guest's product type unknown."""
    from bot.hyperv.errors import JEA_ROLE_CAPABILITY, CommandNotVisible

    repo = PSRC.parents[2]
    assert (repo / JEA_ROLE_CAPABILITY).resolve() == PSRC.resolve()
    assert "get-ciminstance" in role()
    said = CommandNotVisible("The term ...", command="Get-CimInstance").in_role_terms()
    assert "Get-CimInstance" in said and "VisibleCmdlets" in said and JEA_ROLE_CAPABILITY in said
