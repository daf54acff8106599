"""bot/hyperv/winrm/clixml.py: the quick serializer reads CLIXML exactly as
pypsrp's own does (it only skips pypsrp's per-value work for primitives),
including the `_xHHHH_` escapes, non-ASCII text, references to earlier
objects and type names, lists and nested objects."""

from __future__ import annotations

from typing import Any

import pytest
from pypsrp.complex_objects import ComplexObject
from pypsrp.serializer import Serializer

from bot.hyperv.winrm.clixml import QuickSerializer

CUSTOM = (
    '<Obj RefId="0"><TN RefId="0"><T>System.Management.Automation.PSCustomObject</T>'
    "<T>System.Object</T></TN><MS>"
    '<S N="Name">WEB_x000A_01</S><S N="Note">zürich 東京 _x_ x_</S>'
    '<G N="Id">7b0b6c1e-2b8d-4bd6-9a1f-0c1f5e8f9a11</G><I32 N="Count">3</I32>'
    '<B N="On">true</B><B N="Off">False</B><Nil N="Parent" />'
    '<DT N="At">2026-11-24T09:00:00.1234567+01:00</DT><I64 N="Bytes">123456789012</I64>'
    '<U64 N="Free">18446744073709551615</U64><Db N="Ratio">1.5</Db><C N="Letter">65</C>'
    '<BA N="Blob">AAEC</BA><Version N="V">10.0.17763</Version><TS N="Age">PT1H</TS>'
    "</MS></Obj>"
)
LIST = (
    '<Obj RefId="0"><TN RefId="0"><T>System.Object[]</T><T>System.Array</T>'
    "<T>System.Object</T></TN><LST>"
    '<S>a</S><I32>2</I32><Obj RefId="1"><TN RefId="1"><T>System.Object</T></TN>'
    '<ToString>first</ToString><MS><S N="K">v</S></MS></Obj>'
    '<Obj RefId="2"><TNRef RefId="1" /><ToString>second</ToString><MS><S N="K">w</S></MS></Obj>'
    '<Ref RefId="1" /></LST></Obj>'
)

# What Select-Object sends back (the shape of every output the bot reads),
# and type lists whose first known name decides another class, or none.
SELECTED = (
    '<Obj RefId="0"><TN RefId="0"><T>Selected.Microsoft.HyperV.PowerShell.VMSnapshot</T>'
    "<T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS>"
    '<G N="Id">45d8d5b1-6a2e-4ca3-b4b6-da047cdaba8a</G><S N="Name">bench_x0020_0</S>'
    '<Nil N="ParentSnapshotId" /><DT N="CreationTime">2026-12-04T16:44:07.018228Z</DT>'
    '<U64 N="SizeOfSystemFiles">4194321</U64>'
    '<Obj N="AccessPaths" RefId="1"><TN RefId="1"><T>System.String[]</T><T>System.Array</T>'
    "<T>System.Object</T></TN><LST><S>C:\\</S><S>\\\\?\\Volume{x}\\</S></LST></Obj>"
    '<Obj N="Nested" RefId="2"><TNRef RefId="0" /><MS><S N="K">v</S></MS></Obj>'
    "</MS><ToString>@{Id=45d8d5b1-6a2e-4ca3-b4b6-da047cdaba8a}</ToString></Obj>"
)


def typed(*names: str) -> str:
    listed = "".join(f"<T>{n}</T>" for n in names)
    return f'<Obj RefId="0"><TN RefId="0">{listed}</TN><MS><S N="K">v</S></MS></Obj>'


def plain(value: Any) -> Any:
    """A comparable form of what a serializer returned."""
    if isinstance(value, ComplexObject) and not hasattr(value, "adapted_properties"):
        # One of pypsrp's own classes (CommandMetadataCount, ...): its fields.
        fields = {k: plain(v) for k, v in vars(value).items() if not k.startswith("_")}
        return (type(value).__name__, fields)
    if isinstance(value, ComplexObject):
        return (
            type(value).__name__,
            {k: plain(v) for k, v in value.adapted_properties.items()},
            {k: plain(v) for k, v in value.extended_properties.items()},
            list(value.types),
            str(value),
        )
    if isinstance(value, list):
        return [plain(v) for v in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(
    "clixml",
    [
        CUSTOM,
        LIST,
        SELECTED,
        '<Obj RefId="0"><MS><S N="K">v</S></MS></Obj>',
        typed("System.Management.Automation.PSObject"),
        typed("Selected.X", "System.Management.Automation.PSCustomObject"),
        typed("Selected.X"),
        typed("Selected.X[]", "System.Object"),
        typed(
            "Deserialized.Microsoft.HyperV.PowerShell.VirtualMachine", "Deserialized.System.Object"
        ),
        typed("Selected.Microsoft.PowerShell.Commands.GenericMeasureInfo", "System.Object").replace(
            '<S N="K">v</S>', '<I32 N="Count">1</I32>'
        ),
        typed("System.Collections.Hashtable", "System.Object"),
        typed("System.Object[]", "System.Array", "System.Object"),
        "<Obj RefId=",
        "<S>plain</S>",
        "<S>a_x0020_b</S>",
        "<S>_x005F_x0041_</S>",
        "<S></S>",
        "<S />",
        "<I32>-4</I32>",
        "<Nil />",
    ],
)
def test_reads_clixml_as_pypsrp_does(clixml: str) -> None:
    assert plain(QuickSerializer().deserialize(clixml)) == plain(Serializer().deserialize(clixml))


def test_keeps_the_source_of_an_output_object_as_pypsrp_does() -> None:
    quick, own = QuickSerializer().deserialize(SELECTED), Serializer().deserialize(SELECTED)
    assert quick._xml == own._xml == SELECTED
    nested, own_nested = quick.extended_properties["Nested"], own.extended_properties["Nested"]
    assert nested._xml == own_nested._xml
    assert nested.types == own_nested.types == quick.types


def test_escapes_are_still_decoded() -> None:
    # The fast path is for text with nothing to unescape; this has something.
    assert QuickSerializer().deserialize("<S>line_x000A_next</S>") == "line\nnext"
    assert QuickSerializer().deserialize("<S>caf\u00e9_x0021_</S>") == "caf\u00e9!"
