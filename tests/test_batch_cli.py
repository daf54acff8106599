"""Patch waves on the CLI as a user runs it (the console script's `main`, in
this process: tests/cli_support.py; demo mode): the preview, the
confirmation, `batch show` and `batch list`, and one line with exit code 2
for a bad selection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_support import invoke, one_line_error


def _run_with_input(cwd: Path, text: str, *args: str) -> tuple[int, str, str]:
    done = invoke(cwd, *args, input=text)
    return done.returncode, done.stdout, done.stderr


WAVE = ("checkpoint", "create", "--group", "web-tier", "CORP-DC01", "-r", "KB5044284 web wave")


def test_a_wave_is_previewed_confirmed_taken_and_shown(tmp_path: Path) -> None:
    code, out, err = _run_with_input(tmp_path, "n\n", *WAVE)
    assert code == 1, err
    # The headline names the refused VM; its line says why, once.
    assert out.startswith("4 VMs: 3 can be checkpointed, 1 is refused (CORP-DC01)\n")
    assert out.count("CORP-DC01 is a domain controller") == 1
    assert "Take 3 checkpoints? [y/N]" in err and "nothing was recorded" in err
    assert "No batches yet" in invoke(tmp_path, "batch", "list").stdout

    code, out, err = _run_with_input(tmp_path, "y\n", *WAVE)
    # The others are taken; the refused one fails the command (exit 1).
    assert code == 1, err
    assert "BAT-0001: active — 3 of 3 done, 1 refused" in out
    assert "BAT-0001: 1 VM refused (CORP-DC01): it has no checkpoint from this wave" in err
    shown = invoke(tmp_path, "batch", "show", "bat-1", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["state"] == "active"
    assert [(m["vm"], m["state"]) for m in data["members"]] == [
        ("CORP-DC01", "denied"),
        ("WEB01", "active"),
        ("WEB02", "active"),
        ("APP01", "active"),
    ]
    assert data["selection"] == {
        "names": ["CORP-DC01"],
        "tags": [],
        "groups": ["web-tier"],
        "hosts": [],
        "clusters": [],
    }
    assert [e["kind"] for e in data["events"]] == ["requested", "members_recorded"]
    listed = json.loads(invoke(tmp_path, "batch", "list", "--json").stdout)
    assert [b["ref"] for b in listed["batches"]] == ["BAT-0001"]
    text = invoke(tmp_path, "batch", "list").stdout
    assert text.startswith("BAT-0001  active") and "3 of 3 done, 1 refused" in text
    audit = invoke(tmp_path, "audit", "export", "--format", "jsonl")
    rows = [json.loads(line) for line in audit.stdout.splitlines()]
    assert {r["batch"] for r in rows} == {"BAT-0001"}


def test_yes_and_json_keep_stdout_one_document(tmp_path: Path) -> None:
    result = invoke(
        tmp_path,
        "checkpoint",
        "create",
        "--tag",
        "env=staging",
        "-r",
        "staging wave",
        "--yes",
        "--json",
        "--ttl",
        "6h",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ref"] == "BAT-0001" and data["ttl_seconds"] == 6 * 3600
    assert [m["vm"] for m in data["members"]] == ["STG-WEB01", "STG-APP01"]
    assert data["preview"]["summary"].startswith("2 VMs: 2 can be checkpointed")
    assert "2 VMs: 2 can be checkpointed" in result.stderr
    # Each member's own record names its wave, and how to see the rest.
    member = data["members"][0]["change"]
    shown = invoke(tmp_path, "change", "show", member)
    assert (
        "  wave:       BAT-0001 ('checkpoint-bot batch show BAT-0001' shows all its members)"
        in (shown.stdout)
    )
    assert json.loads(invoke(tmp_path, "change", "show", member, "--json").stdout)["batch"] == (
        "BAT-0001"
    )


def test_rollback_and_merge_with_json_print_one_document_and_nothing_left_is_one_error(
    tmp_path: Path,
) -> None:
    """What a rollback or merge would lose is said before it runs; with
    --json it is said on stderr, so stdout is the batch as JSON alone. A
    batch with nothing left to act on gets the service's one-line error,
    not a list of no VMs before it."""
    wave = ("checkpoint", "create", "--tag", "env=staging", "-r", "staging wave", "--yes")
    assert invoke(tmp_path, *wave).returncode == 0
    # The demo's staging VMs need no approval to roll back or merge.
    for action, state in (("rollback", "rolled_back"), ("merge", "done")):
        result = invoke(tmp_path, "batch", action, "BAT-1", "--yes", "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert (data["action"], data["state"]) == (action, state)
        said = (
            "rolling back restores 2 VMs" if action == "rollback" else "keeps the changes of 2 VMs"
        )
        assert said in result.stderr and said not in result.stdout

    again = invoke(tmp_path, "batch", "merge", "BAT-1", "--yes")
    assert again.returncode == 1
    assert again.stdout == ""
    assert "BAT-0001 has no member to merge" in one_line_error(again)
    assert "0 VMs" not in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--tag", "env"), "is not key=value: write it like --tag env=staging"),
        (("--group", "webtier"), "did you mean web-tier?"),
        (("--cluster", "prodcluster"), "no cluster named 'prodcluster' in the inventory"),
        (("--tag", "env=nowhere"), "matches no VM"),
        # A group's name among the VMs: which flag takes it.
        (
            ("web-tier", "STG-WEB01"),
            "web-tier is a group, not a VM: name one of its VMs (WEB01, WEB02, APP01), "
            "or checkpoint them all as one wave with --group web-tier",
        ),
        (("--host", "HV01", "WEB01"), "a reason is required"),
    ],
)
def test_a_bad_selection_is_one_line_exit_2_and_records_nothing(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    extra = () if "WEB01" in args else ("-r", "wave")
    result = invoke(tmp_path, "checkpoint", "create", *args, *extra, "--yes")
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert "No batches yet" in invoke(tmp_path, "batch", "list").stdout


def test_batch_commands_have_help(tmp_path: Path) -> None:
    result = invoke(tmp_path, "batch", "--help")
    assert result.returncode == 0
    for command in ("show", "list"):
        assert f"  {command}" in result.stdout
    assert "--group" in invoke(tmp_path, "checkpoint", "create", "--help").stdout


# Far enough ahead that the demo's real clock is always before it.
LATER = "2030-12-10 22:00"


def test_a_wave_at_a_time_is_scheduled_listed_and_withdrawn(tmp_path: Path) -> None:
    """`--at` without a zone reads the configured defaults.timezone (UTC in
    the demo) and says so; the wave waits, `windows` lists it, its
    requester withdraws it, and nothing runs."""
    code, out, err = _run_with_input(tmp_path, "y\n", *WAVE, "--at", LATER)
    # CORP-DC01 is refused: exit 1, though the others wait for their time.
    assert code == 1, err
    said = (
        f"--at '{LATER}' is 2030-12-10 22:00 UTC (no zone given: the configured defaults.timezone)"
    )
    assert said in err
    assert "Take 3 checkpoints at 2030-12-10 22:00 UTC" in err
    assert "BAT-0001: scheduled — 0 of 3 done, 1 refused" in out
    assert (
        "runs at:    2030-12-10 22:00 UTC, as asked (--at); 'checkpoint-bot batch withdraw" in out
    )
    alone = invoke(
        tmp_path, "checkpoint", "create", "STG-WEB01", "-r", "IIS", "--at", f"{LATER} Europe/Berlin"
    )
    assert alone.returncode == 0, alone.stderr
    assert "is 2030-12-10 22:00 Europe/Berlin (2030-12-10 21:00 UTC)" in alone.stderr
    assert "CHG-0005: scheduled" in alone.stdout
    assert "due 2030-12-10 21:00 UTC" in alone.stdout

    windows = invoke(tmp_path, "windows").stdout
    assert windows.splitlines()[-3:] == [
        "asked for at a time (--at):",
        "  2030-12-10 21:00 UTC  CHG-0005  STG-WEB01 — IIS (cli:tester)",
        "  2030-12-10 22:00 UTC  BAT-0001  WEB01, WEB02, APP01 — KB5044284 web wave (cli:tester)",
    ]
    listed = json.loads(invoke(tmp_path, "windows", "--json").stdout)["at"]
    assert [(t["ref"], t["run_at"]) for t in listed] == [
        ("CHG-0005", "2030-12-10T21:00:00+00:00"),
        ("BAT-0001", "2030-12-10T22:00:00+00:00"),
    ]

    someone_else = invoke(
        tmp_path, "batch", "withdraw", "BAT-1", env={"CHECKPOINT_BOT_USER": "eve"}
    )
    assert "only @cli:tester, who asked for BAT-0001, may withdraw it" in one_line_error(
        someone_else
    )
    gone = invoke(tmp_path, "batch", "withdraw", "BAT-1")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.startswith("BAT-0001: 3 members withdrawn: WEB01, WEB02, APP01")
    single = invoke(tmp_path, "checkpoint", "withdraw", "CHG-5")
    assert single.returncode == 0, single.stderr
    assert single.stdout.startswith("CHG-0005: create withdrawn; nothing runs for it.")
    assert "asked for at a time" not in invoke(tmp_path, "windows").stdout
    jobs = json.loads(invoke(tmp_path, "change", "show", "CHG-5", "--json").stdout)["jobs"]
    assert [j["state"] for j in jobs] == ["cancelled"]


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("tomorrow", 'is not a date and time: write it like --at "2026-12-10 22:00"'),
        ("2030-12-10", "has no time of day"),
        ("2030-12-10 22:00 Mars/Base", "unknown time zone 'Mars/Base'"),
        ("2020-12-10 22:00", "is in the past"),
    ],
)
def test_a_bad_at_is_one_line_exit_2_and_records_nothing(
    tmp_path: Path, at: str, message: str
) -> None:
    result = invoke(
        tmp_path, "checkpoint", "create", "WEB01", "WEB02", "-r", "w", "--at", at, "--yes"
    )
    assert result.returncode == 2
    assert message in one_line_error(result)
    assert "No batches yet" in invoke(tmp_path, "batch", "list").stdout


def test_no_answer_at_the_question_is_one_line_and_records_nothing(tmp_path: Path) -> None:
    """Input that ends at the confirmation (a script's empty stdin) is no
    yes: one line that says so ("aborted" until 2026-12-05), exit 1."""
    result = invoke(tmp_path, *WAVE, input="")
    assert result.returncode == 1
    assert one_line_error(result) == (
        "checkpoint-bot: error: no answer (the input ended): nothing was done"
    )
    assert "No batches yet" in invoke(tmp_path, "batch", "list").stdout


def test_a_wave_of_one_vm_is_counted_in_the_singular(tmp_path: Path) -> None:
    """The same VM named twice is one VM (each VM once), and the wave says
    so in the singular."""
    code, out, err = _run_with_input(
        tmp_path, "y\n", "checkpoint", "create", "STG-APP01", "stg-app01", "--reason", "one"
    )
    assert code == 0, err
    assert "BAT-0001: 1 checkpoint is being taken…" in err
    assert out.startswith("1 VM: 1 can be checkpointed")
    listed = invoke(tmp_path, "batch", "list").stdout
    assert listed.startswith("BAT-0001  active               1 VM  1 of 1 done")


def test_batch_withdraw_takes_back_the_wave_rollback_its_asker_asked_for(tmp_path: Path) -> None:
    # The demo policy makes a prod rollback wait for an approver. Whoever
    # asked for the wave's rollback may take it back in one step, as
    # `checkpoint withdraw CHG-n` does for one change; nobody else may, and
    # nothing is rolled back.
    taken = invoke(tmp_path, "checkpoint", "create", "--group", "web-tier", "-r", "KB1", "--yes")
    assert taken.returncode == 0, taken.stderr
    bob = {"CHECKPOINT_BOT_USER": "bob"}
    asked = invoke(tmp_path, "batch", "rollback", "BAT-1", "--yes", env=bob)
    assert asked.returncode == 0, asked.stderr
    assert "rollback WAITING FOR APPROVAL" in asked.stdout
    shown = json.loads(invoke(tmp_path, "batch", "show", "BAT-1", "--json").stdout)
    assert {(m["waiting_for_approval"], m["waiting_asked_by"]) for m in shown["members"]} == {
        ("rollback", "cli:bob")
    }
    # Asked again: nothing new is asked of the approvers, and it says whose it is.
    again = invoke(tmp_path, "batch", "rollback", "BAT-1", "--yes")
    assert again.returncode == 0, again.stderr
    assert (
        "BAT-0001: rollback already WAITING FOR APPROVAL, asked by @cli:bob; nothing new was asked"
        in again.stdout
    )
    repeated = json.loads(invoke(tmp_path, "batch", "rollback", "BAT-1", "--yes", "--json").stdout)
    assert repeated["already_asked"] is True

    owner = invoke(tmp_path, "batch", "withdraw", "BAT-1")  # the wave's requester
    assert owner.returncode == 1
    assert one_line_error(owner).endswith(
        "error: only @cli:bob, who asked for BAT-0001's rollback, may withdraw it"
    )
    gone = invoke(tmp_path, "batch", "withdraw", "BAT-1", "--json", env=bob)
    assert gone.returncode == 0, gone.stderr
    data = json.loads(gone.stdout)
    assert data["withdrawn"] == ["WEB01", "WEB02", "APP01"]
    assert data["withdrawn_actions"] == ["rollback"]
    assert [(m["vm"], m["state"]) for m in data["members"]] == [
        ("WEB01", "active"),
        ("WEB02", "active"),
        ("APP01", "active"),
    ]
    assert all(m["waiting_for_approval"] is None for m in data["members"])
    # Nothing of the withdrawn rollback was done: the line still counts the create.
    assert data["progress"] == "3 of 3 done"
    assert "3 of 3 done" in invoke(tmp_path, "batch", "list").stdout
    history = invoke(tmp_path, "batch", "show", "BAT-1").stdout
    assert "the rollback of 3 members withdrawn by @cli:bob before they ran" in history
    for ref in ("CHG-1", "CHG-2", "CHG-3"):
        change = json.loads(invoke(tmp_path, "change", "show", ref, "--json").stdout)
        assert change["state"] == "active"
        assert [j["kind"] for j in change["jobs"]] == ["create"]  # no rollback job was made

    again = invoke(tmp_path, "batch", "withdraw", "BAT-1", env=bob)
    assert one_line_error(again).endswith(
        "BAT-0001 has nothing waiting to withdraw (it is active): roll it back or merge it instead"
    )


def test_batch_withdraw_text_names_what_it_took_back(tmp_path: Path) -> None:
    assert invoke(tmp_path, "checkpoint", "create", "--group", "web-tier", "-r", "KB1", "--yes")
    assert invoke(tmp_path, "batch", "rollback", "BAT-1", "--yes").returncode == 0
    gone = invoke(tmp_path, "batch", "withdraw", "BAT-1")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.startswith(
        "BAT-0001: the rollback of 3 members withdrawn: WEB01, WEB02, APP01"
    )


def test_batch_withdraw_of_a_finished_wave_suggests_nothing_it_cannot_do(tmp_path: Path) -> None:
    taken = invoke(tmp_path, "checkpoint", "create", "--tag", "env=staging", "-r", "KB1", "--yes")
    assert taken.returncode == 0, taken.stderr
    assert invoke(tmp_path, "batch", "merge", "BAT-1", "--yes").returncode == 0
    gone = invoke(tmp_path, "batch", "withdraw", "BAT-1")
    assert gone.returncode == 1
    assert one_line_error(gone).endswith("BAT-0001 has nothing waiting to withdraw (it is done)")


# STG-APP01's VSS writers are broken (the demo's hosts): a production-only
# checkpoint of it fails on its host, WEB01's is taken.
FAILING_WAVE = (
    "checkpoint",
    "create",
    "WEB01",
    "STG-APP01",
    "-r",
    "KB1",
    "--type",
    "production-only",
    "--yes",
)
BOB = {"CHECKPOINT_BOT_USER": "bob"}


def test_a_later_wave_action_is_judged_on_the_members_it_acted_on(tmp_path: Path) -> None:
    """Until 2026-12-05 every wave action after one member's failed create
    exited 1 (the wave's state, partly failed, for ever) and its progress
    counted the failure as done ("2 of 2 done, 1 failed")."""
    taken = invoke(tmp_path, *FAILING_WAVE)
    # The create failed on a member it acted on.
    assert taken.returncode == 1, taken.stderr
    assert "BAT-0001: partly failed — 1 of 2 done, 1 failed" in taken.stdout
    assert "BAT-0001: 1 of 2 done, 1 failed" in taken.stderr
    assert "1 of 2 done, 1 failed" in invoke(tmp_path, "batch", "list").stdout

    # WEB01's rollback (prod) waits for an approver: asked, not refused.
    asked = invoke(tmp_path, "batch", "rollback", "BAT-1", "--yes")
    assert asked.returncode == 0, asked.stdout
    assert asked.stdout.startswith(
        "BAT-0001: rolling back restores 1 VM to its checkpoint:\n"
        "  WEB01 on HV01: everything written since CHG-0001's checkpoint is lost\n"
    )
    # The requester never approves: refused on the one member it acts on.
    own = invoke(tmp_path, "batch", "approve", "BAT-1")
    assert own.returncode == 1
    assert "  ! WEB01: you cannot approve CHG-0001" in own.stdout
    approved = invoke(tmp_path, "batch", "approve", "BAT-1", env=BOB)
    assert approved.returncode == 0, approved.stdout
    assert "BAT-0001: partly failed — 1 of 2 rolled back, 1 failed" in approved.stdout
    # The list reads the wave's events too: the same line as the wave's own.
    assert "1 of 2 rolled back, 1 failed" in invoke(tmp_path, "batch", "list").stdout
    assert "CHG-0001  WEB01        HV01   rolled back" in approved.stdout

    merged = invoke(tmp_path, "batch", "merge", "BAT-1", "--yes")
    assert merged.returncode == 0, merged.stdout
    assert merged.stdout.startswith("BAT-0001: merging keeps the changes of 1 VM:\n")
    assert "CHG-0001  WEB01        HV01   merged" in merged.stdout
    history = invoke(tmp_path, "batch", "show", "BAT-1").stdout
    for said in (
        "rollback of 1 member needs 1 approval",
        "@cli:bob approved what 1 member waited for",
        "merge of 1 member asked by @cli:tester",
    ):
        assert said in history, history


def test_withdrawn_members_are_counted_as_withdrawn_not_refused(tmp_path: Path) -> None:
    """Until 2026-12-05 a withdrawn wave read "refused — 0 of 0 done, 4
    refused", and a second withdraw said it "is refused"."""
    asked = invoke(tmp_path, *WAVE, "--at", LATER, "--yes")
    assert asked.returncode == 1, asked.stderr  # CORP-DC01 is refused
    gone = invoke(tmp_path, "batch", "withdraw", "BAT-1")
    assert gone.returncode == 0, gone.stderr
    assert gone.stdout.splitlines()[:2] == [
        "BAT-0001: 3 members withdrawn: WEB01, WEB02, APP01",
        "BAT-0001: withdrawn — 1 refused, 3 withdrawn",
    ]
    listed = invoke(tmp_path, "batch", "list").stdout
    assert listed.startswith("BAT-0001  withdrawn           4 VMs  1 refused, 3 withdrawn")
    data = json.loads(invoke(tmp_path, "batch", "show", "BAT-1", "--json").stdout)
    assert (data["state"], data["progress"]) == ("withdrawn", "1 refused, 3 withdrawn")
    again = invoke(tmp_path, "batch", "withdraw", "BAT-1")
    assert one_line_error(again).endswith(
        "BAT-0001 has nothing waiting to withdraw (it is withdrawn)"
    )


def test_a_wave_asked_again_names_the_changes_already_open_on_its_vms(tmp_path: Path) -> None:
    """Seen (a patching admin): a wave run again after a timeout previewed
    "5 can be checkpointed" and, confirmed, took a second checkpoint of every
    VM, chained under the first; docs/batches.md warns against exactly that,
    and the preview is where it is caught."""
    wave = ("checkpoint", "create", "--group", "staging", "-r", "KB5044284 staging")
    code, _out, err = _run_with_input(tmp_path, "", *wave, "--yes")
    assert code == 0, err
    code, out, err = _run_with_input(tmp_path, "n\n", *wave, "WEB01")
    assert code == 1 and "nothing was recorded" in err
    lines = out.splitlines()
    for vm, ref in (("STG-WEB01", "CHG-0001"), ("STG-APP01", "CHG-0002")):
        at = next(i for i, line in enumerate(lines) if line.startswith(f"  ✓ {vm} "))
        assert lines[at + 1].startswith(
            f"      ! already open on it: {ref} (active, BAT-0001, asked "
        )
        assert lines[at + 1].endswith(": KB5044284 staging)")
    web01 = next(i for i, line in enumerate(lines) if line.startswith("  ✓ WEB01 "))
    assert not lines[web01 + 1].startswith("      !")
    assert lines[-1] == (
        "! 2 VMs of this wave have a change open already: taking it adds another checkpoint "
        "beside each (docs/batches.md)"
    )
    preview = json.loads(invoke(tmp_path, *wave, "WEB01", "--yes", "--json").stdout)["preview"]
    opened = {c["vm"]: [o["change"] for o in c["open_changes"]] for c in preview["candidates"]}
    assert opened == {"STG-WEB01": ["CHG-0001"], "STG-APP01": ["CHG-0002"], "WEB01": []}


def test_a_reason_with_line_breaks_keeps_the_preview_one_line_a_vm(tmp_path: Path) -> None:
    """Seen: "! already open on it: CHG-0001 (active, asked …: line one" and
    "line two)" on the next line, where `change list` folds the same reason
    to one line; the preview folds it the same way (bot.reasons.one_line)."""
    made = invoke(tmp_path, "checkpoint", "create", "WEB02", "-r", "line one\nline two\r\tthree")
    assert made.returncode == 0, made.stderr
    code, out, err = _run_with_input(
        tmp_path, "n\n", "checkpoint", "create", "--group", "web-tier", "-r", "wave preview"
    )
    assert code == 1 and "nothing was recorded" in err
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("  ✓ WEB02 "))
    said = lines[at + 1]
    assert said.startswith("      ! already open on it: CHG-0001 (active, asked ")
    assert said.endswith(": line one line two three)"), said
    assert not lines[at + 2].startswith("line two")
    listed = invoke(tmp_path, "change", "list").stdout.splitlines()
    [row] = [line for line in listed if line.startswith("CHG-0001")]
    assert row.endswith("line one line two three")


def test_a_member_whose_checkpoint_type_is_not_known_says_so_in_words(tmp_path: Path) -> None:
    """Seen: "CHG-0004 STG-WEB01 HV03 active, unknown taken" for a member
    whose checkpoint the reconciler adopted (what it holds cannot be told
    from the host: no memory, from a VM whose state then is not known)."""
    import sqlite3

    code, _out, err = _run_with_input(tmp_path, "", *WAVE[:4], "-r", "KB5044284", "--yes")
    assert code == 0, err
    db = tmp_path / "var" / "checkpoint-bot.db"  # demo mode's record
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE change SET taken_type = 'unknown' WHERE vm_name = 'WEB02'")
    shown = invoke(tmp_path, "batch", "show", "BAT-1").stdout
    line = next(line for line in shown.splitlines() if " WEB02 " in line)
    assert line.endswith("active, type not known"), line
    assert "unknown taken" not in shown
