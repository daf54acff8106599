"""A merge that would not be a valid inventory is refused, and still shown.

One problem discovery cannot resolve by itself (here: VMs on a host the
merged file does not list) refuses the merge, nothing written, exit 2 with
one line saying why; `inventory diff` and `discover --merge` still show
everything else they found (a rename with the groups that follow it, a DC
that moved, a VM gone), so the problem does not hide the rest of the drift.
"""

from __future__ import annotations

import json
from pathlib import Path

from bot.inventory.yamledit import dump_document, layout_of, load_document
from tests.cli_support import emulated_estate, invoke, one_line_error
from tests.test_discovery_rename_groups import ENV, _commented_inventory, _drifted_demo_hosts


def _without_hv03(workdir: Path) -> Path:
    """The commented demo inventory without HV03, its VMs and the group of
    them: what HV03 holds has nowhere to go in this file."""
    text = _commented_inventory(workdir)
    doc = load_document(text)
    doc["hosts"] = [h for h in doc["hosts"] if h["name"] != "HV03"]
    del doc["groups"]["staging"]
    doc["vms"] = [vm for vm in doc["vms"] if vm["host"] != "HV03"]
    target = workdir / "hv01-hv02.yaml"
    target.write_text(dump_document(doc, layout_of(text)), encoding="utf-8")
    return target


def test_a_refused_merge_still_shows_every_change_and_says_why(tmp_path: Path) -> None:
    host_model = _drifted_demo_hosts()
    hv01 = next(h for h in host_model.hosts if h.name == "HV01")
    web01 = next(vm for vm in hv01.vms if vm.name == "WEB01")
    renamed = hv01.model_copy(
        update={
            "vms": [
                vm if vm is not web01 else vm.model_copy(update={"name": "WEB01-NEW"})
                for vm in hv01.vms
            ]
        }
    )
    host_model = host_model.model_copy(
        update={"hosts": [renamed if h is hv01 else h for h in host_model.hosts]}
    )
    with emulated_estate(tmp_path, model=host_model, env=ENV):
        target = _without_hv03(tmp_path)
        before = target.read_text(encoding="utf-8")
        for args in (
            ("inventory", "diff", target.name),
            ("inventory", "discover", "--merge", target.name),
        ):
            result = invoke(tmp_path, "-c", "bot.yaml", *args, env=ENV)
            assert result.returncode == 2, result.stderr
            error = one_line_error(result)
            assert "the merged inventory would not be valid" in error
            assert "unknown host 'HV03'" in error
            out = result.stdout
            assert "name WEB01 → WEB01-NEW" in out
            assert "renamed WEB01 → WEB01-NEW (also in groups: web-tier)" in out
            assert "host HV02 → HV01" in out  # CORP-DC02
            assert "Marked missing (1):\n  WEB02" in out
            assert "STG-WEB01-NEW" in out and "NEW-APP01" in out  # found, shown
            assert "Wrote" not in out and "hosts:" not in out  # no YAML, nothing written
            assert target.read_text(encoding="utf-8") == before
        as_json = invoke(
            tmp_path, "-c", "bot.yaml", "inventory", "diff", target.name, "--json", env=ENV
        )
        assert as_json.returncode == 2
        report = json.loads(as_json.stdout)
        assert "unknown host 'HV03'" in report["refused"]
        (web,) = [e for e in report["entries"] if e["renamed_from"] == "WEB01"]
        assert (web["name"], web["in_groups"]) == ("WEB01-NEW", ["web-tier"])
