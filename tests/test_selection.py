"""Resolving a wave's selection against the inventory (bot.service.selection),
as a property: for random names, groups, hosts and tags of the demo estate,
the VMs are exactly those the documented rule names, each once, in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.inventory import demo_inventory_path, load_inventory
from bot.service import BadRequest, Selection
from bot.service.selection import resolve

INVENTORY = load_inventory(demo_inventory_path())
NAMES = [vm.name for vm in INVENTORY.vms]
GROUPS = sorted(INVENTORY.groups)
HOSTS = [h.name for h in INVENTORY.hosts]
TAGS = sorted({f"{k}={v}" for vm in INVENTORY.vms for k, v in vm.tags.items()})


def _case(text: str, flip: bool) -> str:
    return text.lower() if flip else text


selections = st.builds(
    lambda names, groups, hosts, tags: Selection.of(names, groups=groups, hosts=hosts, tags=tags),
    st.lists(st.builds(_case, st.sampled_from(NAMES), st.booleans()), max_size=6),
    st.lists(st.sampled_from(GROUPS), max_size=2),
    st.lists(st.sampled_from(HOSTS), max_size=2),
    st.lists(st.sampled_from(TAGS), max_size=2),
)


def _expected(sel: Selection) -> list[str]:
    """The rule, written out plainly: names, groups, hosts add (in that
    order); tags narrow them, or pick from everything when alone."""
    added = [INVENTORY.vm(n).name for n in sel.names]
    added += [m.casefold() for g in sel.groups for m in INVENTORY.groups[g]]
    added += [vm.name for h in sel.hosts for vm in INVENTORY.vms if vm.host == h]
    pool = [n.casefold() for n in added] if added else [vm.name.casefold() for vm in INVENTORY.vms]
    if sel.tags:
        pool = [n for n in pool if all(INVENTORY.vm(n).tags.get(k) == v for k, v in sel.tags)]
    out: list[str] = []
    for n in pool:
        if n not in out:
            out.append(n)
    return out


@settings(max_examples=300)
@given(selections, st.integers(min_value=1, max_value=30))
def test_resolution_is_the_documented_rule(sel: Selection, maximum: int) -> None:
    expected = [] if sel.empty else _expected(sel)
    if sel.empty or not expected or len(expected) > maximum:
        try:
            resolve(INVENTORY, sel, maximum=maximum)
        except BadRequest as exc:
            assert (
                ("no VM" in exc.message)
                or ("more than" in exc.message)
                or ("name the VMs" in exc.message)
            )
            return
        raise AssertionError(f"{sel} should have been refused")
    got = resolve(INVENTORY, sel, maximum=maximum)
    assert [vm.name.casefold() for vm in got] == expected
