"""The `/checkpoint` grammar: every command and form, every error, the help, and
a property test that nothing typed after `/checkpoint` escapes as anything but
a request or a GrammarError."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.durations import DurationError
from bot.inventory.names import check_name
from handlers import (
    COMMANDS,
    ApproveRequest,
    BatchRequest,
    ChangesRequest,
    CreateRequest,
    ExtendRequest,
    GrammarError,
    HelpRequest,
    ListRequest,
    MergeRequest,
    OpenCreateModal,
    PolicyRequest,
    RejectRequest,
    RollbackRequest,
    SettingsRequest,
    SlashRequest,
    StatusRequest,
    WaveRequest,
    WindowsRequest,
    WithdrawRequest,
    help_sections,
    help_text,
    normalize_change_ref,
    parse,
    usage,
)
from handlers.grammar.tokens import Token, tokenize

CREATE_USAGE = (
    "Usage: /checkpoint create [VM] [--group NAME] [--host HOST] [--cluster CLUSTER] "
    "[--tag KEY=VALUE] "
    '[--type production|production-only|standard] [--ttl 24h] [--at "2026-12-10 22:00"] '
    '[--reason "..."]'
)

PARSED: list[tuple[str, SlashRequest]] = [
    # create: options, free text, Slack's smart quotes and dashes, `=` forms, case
    ("create", OpenCreateModal()),
    ("  CREATE  ", OpenCreateModal()),
    ("create WEB01 patching KB5044284", CreateRequest("WEB01", "patching KB5044284")),
    ('create WEB01 --reason "patch Tuesday"', CreateRequest("WEB01", "patch Tuesday")),
    (
        "create WEB01 --reason patching KB1 --ttl 4h",
        CreateRequest("WEB01", "patching KB1", None, "4h"),
    ),
    ('create WEB01 --reason="x y" --ttl=24h', CreateRequest("WEB01", "x y", None, "24h")),
    (
        "create WEB01 \u2014reason \u201cpatch day\u201d \u2014ttl 4h",
        CreateRequest("WEB01", "patch day", None, "4h"),
    ),
    ("create WEB01 \u2013type standard --reason r", CreateRequest("WEB01", "r", "standard")),
    ("create WEB01 --reason=\u201cx y\u201d", CreateRequest("WEB01", "x y")),
    # --at runs to the next option, quoted or not
    (
        "create WEB01 patching --at 2026-12-10 22:00 --ttl 4h",
        CreateRequest("WEB01", "patching", None, "4h", "2026-12-10 22:00"),
    ),
    ("create WEB01 \u2018single quoted\u2019", CreateRequest("WEB01", "single quoted")),
    ("create WEB01 'single quoted'", CreateRequest("WEB01", "single quoted")),
    ("create WEB01 don't reboot", CreateRequest("WEB01", "don't reboot")),
    ("create WEB01 don\u2019t reboot", CreateRequest("WEB01", "don\u2019t reboot")),
    (
        "create web01 --TYPE Production-Only --TTL 2D --Reason r",
        CreateRequest("web01", "r", "production-only", "2D"),
    ),
    ('create "WEB 01" fix', CreateRequest("WEB 01", "fix")),
    ("create\nWEB01\n\n  patching \t KB1\n", CreateRequest("WEB01", "patching KB1")),
    ("create\u00a0WEB01\u00a0fix", CreateRequest("WEB01", "fix")),
    ("create WEB01 fix -- part 2 \u2014 now", CreateRequest("WEB01", "fix -- part 2 \u2014 now")),
    ('create WEB01 "--not an option"', CreateRequest("WEB01", "--not an option")),
    ("create WEB01 --ttl 4h fix it", CreateRequest("WEB01", "fix it", None, "4h")),
    ("create WEB01 A &amp; B &lt;3", CreateRequest("WEB01", "A & B <3")),
    ("create WEB01 --help", HelpRequest("create")),
    # list
    ("list", ListRequest()),
    ("LIST web01", ListRequest("web01")),
    ("list HV01", ListRequest("HV01")),
    # rollback: a change id or a VM, kept apart
    ("rollback CHG-12", RollbackRequest(change_ref="CHG-0012")),
    ("rollback chg12", RollbackRequest(change_ref="CHG-0012")),
    ("rollback CHG-0012", RollbackRequest(change_ref="CHG-0012")),
    ("rollback WEB01", RollbackRequest(vm="WEB01")),
    # merge, extend, status
    ("merge chg-7", MergeRequest("CHG-0007")),
    ("Merge CHG-123456", MergeRequest("CHG-123456")),
    ("extend CHG-1 24h", ExtendRequest("CHG-0001", "24h")),
    ('extend chg1 "1d 12h"', ExtendRequest("CHG-0001", "1d 12h")),
    # ... and, as rollback, a VM's name for its one change the action fits
    ("merge WEB01", MergeRequest(vm="WEB01")),
    ("extend web01 3d", ExtendRequest(None, "3d", vm="web01")),
    ("status CHG-0042", StatusRequest("CHG-0042")),
    # policy, windows
    ("policy DC01", PolicyRequest("DC01", "create")),
    # `status` alone: the open changes (it was an error until 2026-12-05).
    ("status", ChangesRequest()),
    ("policy DC01 ROLLBACK", PolicyRequest("DC01", "rollback")),
    ("policy DC01 merge", PolicyRequest("DC01", "merge")),
    # The action before the VM, as `checkpoint-bot policy explain` takes it too.
    ("policy rollback DC01", PolicyRequest("DC01", "rollback")),
    ("policy Extend DC01", PolicyRequest("DC01", "extend")),
    ("windows", WindowsRequest()),
    # settings: show vs change
    ("settings WEB01", SettingsRequest("WEB01")),
    ("settings WEB01 --type disabled", SettingsRequest("WEB01", "disabled")),
    ("settings WEB01 --automatic OFF", SettingsRequest("WEB01", None, False)),
    (
        'settings WEB01 --automatic off --reason "no checkpoints at boot"',
        SettingsRequest("WEB01", None, False, "no checkpoints at boot"),
    ),
    (
        "settings WEB01 \u2014type standard \u2014automatic=on",
        SettingsRequest("WEB01", "standard", True),
    ),
    # help
    ("", HelpRequest()),
    ("  \n\t ", HelpRequest()),
    ("help", HelpRequest()),
    ("help Create", HelpRequest("create")),
    ("HELP settings", HelpRequest("settings")),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t for t, _ in PARSED])
def test_parses(text: str, expected: SlashRequest) -> None:
    assert parse(text) == expected


def test_settings_show_versus_change() -> None:
    assert not SettingsRequest("WEB01").is_change
    assert SettingsRequest("WEB01", automatic=False).is_change


def test_requests_carry_parsed_durations() -> None:
    request = parse("create WEB01 --ttl 1d12h --reason r")
    assert isinstance(request, CreateRequest)
    assert request.ttl is not None and request.ttl.total_seconds() == 36 * 3600
    extend = parse("extend CHG-1 90m")
    assert isinstance(extend, ExtendRequest) and extend.duration.total_seconds() == 5400


def test_rollback_request_needs_exactly_one_target() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RollbackRequest()
    with pytest.raises(ValueError, match="exactly one"):
        RollbackRequest(change_ref="CHG-0001", vm="WEB01")


ERRORS: list[tuple[str, str, str]] = [
    (
        "create WEB01",
        'a reason is required: say why, e.g. /checkpoint create WEB01 --reason "KB5044284"',
        CREATE_USAGE,
    ),
    ("create WEB01 --tll 4h", "unknown option --tll for create; did you mean --ttl?", CREATE_USAGE),
    (
        "create WEB01 --zzz r",
        "unknown option --zzz for create; it takes --group, --host, --cluster, --tag, --type, "
        "--ttl, --at or --reason",
        CREATE_USAGE,
    ),
    ("create WEB01 --ttl 4x --reason r", str(DurationError("4x")), CREATE_USAGE),
    ("create WEB01 --ttl 0h --reason r", str(DurationError("0h", not_positive=True)), CREATE_USAGE),
    (
        "create WEB* --reason r",
        "VM name 'WEB*' contains '*', a wildcard or shell/PowerShell metacharacter; "
        "use letters, digits, spaces, '-', '_' or '.'",
        CREATE_USAGE,
    ),
    (
        "create WEB&lt;01 --reason r",
        "VM name 'WEB&lt;01' contains '&lt;', a wildcard or shell/PowerShell metacharacter; "
        "use letters, digits, spaces, '-', '_' or '.'",
        CREATE_USAGE,
    ),
    ('create "" r', "VM name is empty", CREATE_USAGE),
    (
        'create WEB01 "patch it --ttl 4h',
        "unterminated quote: the \" before 'patch it --ttl 4h' is never closed; "
        'add a closing " or leave the quotes out',
        CREATE_USAGE,
    ),
    (
        "create WEB01 \u201cpatch it",
        "unterminated quote: the \u201c before 'patch it' is never closed; "
        "add a closing \u201d or leave the quotes out",
        CREATE_USAGE,
    ),
    (
        "create --reason r",
        "create needs a VM, --group, --host or --tag, e.g. /checkpoint create WEB01 patching "
        "KB5044284 (/checkpoint create alone opens a form)",
        CREATE_USAGE,
    ),
    ("create WEB01 --type", "--type needs a value, e.g. --type production", CREATE_USAGE),
    ("create WEB01 --ttl --reason r", "--ttl needs a value, e.g. --ttl 48h", CREATE_USAGE),
    ('create WEB01 --reason ""', '--reason needs a value, e.g. --reason "KB5044284"', CREATE_USAGE),
    ("create WEB01 --ttl 4h --ttl 5h r", "--ttl is given twice; give it once", CREATE_USAGE),
    (
        "create WEB01 --type prod r",
        "--type must be production, production-only or standard, not 'prod'; "
        "did you mean production?",
        CREATE_USAGE,
    ),
    (
        'create WEB01 "a\x07b"',
        "the reason contains a control character (U+0007); use plain text "
        "(new lines and tabs are fine)",
        CREATE_USAGE,
    ),
    (
        "craete WEB01",
        "unknown command 'craete'; did you mean create?",
        "Try /checkpoint help.",
    ),
    ("restore CHG-1", "unknown command 'restore'; did you mean rollback?", "Try /checkpoint help."),
    (
        "web01 &lt;!channel&gt;",
        "unknown command 'web01'; the commands are create, list, rollback, merge, extend, "
        "approve, reject, withdraw, status, batch, policy, windows, settings, help",
        "Try /checkpoint help.",
    ),
    (
        "&lt;!here&gt; x",
        "unknown command '&lt;!here&gt;'; the commands are create, list, rollback, merge, "
        "extend, approve, reject, withdraw, status, batch, policy, windows, settings, help",
        "Try /checkpoint help.",
    ),
    ("help craete", "unknown command 'craete'; did you mean create?", "Try /checkpoint help."),
    (
        '"unterminated',
        "unterminated quote: the \" before 'unterminated' is never closed; "
        'add a closing " or leave the quotes out',
        "Try /checkpoint help.",
    ),
    (
        "list a b",
        "list takes VM|host|cluster|group, so 'b' is one too many (quote a name with spaces: "
        '"WEB 01")',
        "Usage: /checkpoint list [VM|host|cluster|group]",
    ),
    (
        "list --ttl 4h",
        "list takes no options, so --ttl is not understood",
        "Usage: /checkpoint list [VM|host|cluster|group]",
    ),
    (
        "list web?",
        "VM, host, cluster or group name 'web?' contains '?', a wildcard or "
        "shell/PowerShell metacharacter; use letters, digits, spaces, '-', '_' or '.'",
        "Usage: /checkpoint list [VM|host|cluster|group]",
    ),
    (
        "rollback",
        "rollback needs a change id like CHG-0042 or a VM name, e.g. /checkpoint rollback CHG-0042",
        "Usage: /checkpoint rollback CHG-n|VM",
    ),
    (
        "rollback WEB$01",
        "VM name 'WEB$01' contains '$', a wildcard or shell/PowerShell "
        "metacharacter; use letters, digits, spaces, '-', '_' or '.'",
        "Usage: /checkpoint rollback CHG-n|VM",
    ),
    (
        "extend CHG-1",
        "extend needs a duration like 24h, e.g. /checkpoint extend CHG-0042 24h",
        "Usage: /checkpoint extend CHG-n|VM 24h",
    ),
    ("extend CHG-1 24", str(DurationError("24")), "Usage: /checkpoint extend CHG-n|VM 24h"),
    # A wave's ref where one change belongs: where to go instead.
    # The wave's own button for the verb, or that it has none (as the CLI).
    # The parser cannot know whether the wave exists, so it never says it
    # does ("BAT-0007 is a patch wave" of no wave, until 2026-12-06).
    (
        "rollback bat-7",
        "BAT-0007 is a patch wave's id (BAT-n), not a change's (CHG-n): *Roll back all* on "
        "/checkpoint batch BAT-0007 acts on all the wave's members, if there is one; or give "
        "one member's CHG-n",
        "Usage: /checkpoint rollback CHG-n|VM",
    ),
    (
        "extend BAT-99999999999 2h",
        "BAT-99999999999 is a patch wave's id (BAT-n), not a change's (CHG-n), and a wave is "
        "not extended as a whole: extend each member by its CHG-n (/checkpoint batch "
        "BAT-99999999999 lists them, if there is one; each has its Extend)",
        "Usage: /checkpoint extend CHG-n|VM 24h",
    ),
    (
        "status BAT-3",
        "BAT-0003 is a patch wave's id (BAT-n), not a change's (CHG-n): /checkpoint batch "
        "BAT-0003 shows the wave, if there is one, and acts on all its members; or give one "
        "member's CHG-n",
        "Usage: /checkpoint status CHG-n",
    ),
    # Below zero or zero: what is wrong is the sign, not a missing unit.
    (
        "extend CHG-1 -1h",
        "'-1h' is not more than zero: a duration is positive, like 90m, 24h or 7d",
        "Usage: /checkpoint extend CHG-n|VM 24h",
    ),
    (
        "extend CHG-1 0d",
        "'0d' is not more than zero: a duration is positive, like 90m, 24h or 7d",
        "Usage: /checkpoint extend CHG-n|VM 24h",
    ),
    (
        "status CHG-1 x",
        "status takes CHG-n, so 'x' is one too many",
        "Usage: /checkpoint status CHG-n",
    ),
    (
        "policy DC01 delete",
        "the action must be create, rollback, merge or extend, not 'delete'",
        "Usage: /checkpoint policy VM [create|rollback|merge|extend]",
    ),
    (
        "windows now",
        "windows takes no arguments, so 'now' is not understood",
        "Usage: /checkpoint windows",
    ),
    (
        "settings WEB01 --automatic yes",
        "--automatic must be on or off, not 'yes'",
        "Usage: /checkpoint settings VM [--type production|production-only|standard|disabled] "
        '[--automatic on|off] [--reason "..."]',
    ),
]


@pytest.mark.parametrize(("text", "message", "hint"), ERRORS, ids=[t for t, _, _ in ERRORS])
def test_errors_say_what_was_wrong_and_what_is_right(text: str, message: str, hint: str) -> None:
    with pytest.raises(GrammarError) as caught:
        parse(text)
    assert caught.value.message == message
    assert caught.value.hint == hint
    assert str(caught.value) == f"{message}  {hint}"


def test_error_names_the_command_it_was_about() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("extend CHG-1 soon")
    assert caught.value.command == "extend"
    with pytest.raises(GrammarError) as unknown:
        parse("frobnicate")
    assert unknown.value.command is None


def test_echoed_input_is_shortened_and_visible() -> None:
    with pytest.raises(GrammarError) as caught:
        parse("x" * 500)
    assert "'" + "x" * 39 + "\u2026'" in caught.value.message
    with pytest.raises(GrammarError) as invisible:
        parse('"cre\nate"')
    assert "'cre\\u000aate'" in invisible.value.message


def test_change_refs_normalise_like_the_change_record() -> None:
    from bot.changes.record import parse_ref

    for text in ("CHG-12", "chg12", "CHG-0012", "Chg-000000012", " CHG-7 ", "CHG-123456789"):
        ref = normalize_change_ref(text)
        assert ref is not None and parse_ref(ref) == parse_ref(text)
    for text in ("CHG-", "CHG-1x", "12", "CHG--1", "CHG-1234567890", "WEB01"):
        assert normalize_change_ref(text) is None


def test_tokens_remember_whether_they_began_quoted() -> None:
    assert tokenize('a "--b" --c="d e" \u201cf\u201d') == [
        Token("a"),
        Token("--b", quoted=True),
        Token("--c=d e"),
        Token("f", quoted=True),
    ]


# --- help ----------------------------------------------------------------------------------


def test_help_lists_every_command_with_its_usage() -> None:
    text = help_text()
    for cmd in COMMANDS:
        assert usage(cmd, compact=True) in text
        assert cmd.summary in text


def test_help_for_one_command_shows_its_options_and_examples() -> None:
    text = help_text("CREATE")
    assert usage("create") in text
    for option in ("--type production|production-only|standard", "--ttl 24h", '--reason "..."'):
        assert option in text
    assert "/checkpoint create WEB01 patching KB5044284" in text
    assert "alone opens a form" in text


def test_help_for_an_unknown_topic_suggests_one() -> None:
    with pytest.raises(GrammarError, match="did you mean settings"):
        help_text("setings")


@pytest.mark.parametrize("topic", [None, *(c.name for c in COMMANDS)])
def test_help_sections_fit_slack_sections(topic: str | None) -> None:
    sections = help_sections(topic)
    assert sections and all(0 < len(s) <= 3000 for s in sections)
    assert "\n".join(sections) == help_text(topic)
    # The table's own text never needs escaping: nothing in it reads as mrkdwn control.
    assert not re.search(r"[<>&]", help_text(topic))


def test_help_sections_split_between_lines_when_small() -> None:
    sections = help_sections(None, limit=200)
    assert len(sections) > 1 and all(len(s) <= 200 for s in sections)
    assert "\n".join(sections).replace("\n", "") == help_text().replace("\n", "")


def test_every_example_in_the_table_parses_as_its_command() -> None:
    for cmd in COMMANDS:
        assert cmd.examples, cmd.name
        for example in cmd.examples:
            request = parse(example)
            assert isinstance(request, HelpRequest) == (cmd.name == "help"), example


# --- property: only requests or GrammarErrors come out ------------------------------------

_ESCAPED = re.compile(r"&(?:amp|lt|gt);")


def _check(text: str) -> None:
    try:
        request = parse(text)
    except GrammarError as exc:
        for part in (exc.message, exc.hint):
            # Echoed input is escaped for mrkdwn: no raw control characters of Slack's.
            assert "<" not in part and ">" not in part
            assert "&" not in _ESCAPED.sub("", part)
        return
    assert isinstance(
        request,
        CreateRequest
        | OpenCreateModal
        | ListRequest
        | RollbackRequest
        | MergeRequest
        | ExtendRequest
        | ApproveRequest
        | RejectRequest
        | WithdrawRequest
        | StatusRequest
        | ChangesRequest
        | BatchRequest
        | WaveRequest
        | PolicyRequest
        | WindowsRequest
        | SettingsRequest
        | HelpRequest,
    )
    # What passed carries normalised, checked values only.
    # A wave is withdrawn by its own ref (`/checkpoint withdraw BAT-n`).
    ref = getattr(request, "change_ref", None)
    refs = r"(CHG|BAT)-[0-9]{4,9}" if isinstance(request, WithdrawRequest) else r"CHG-[0-9]{4,9}"
    assert ref is None or re.fullmatch(refs, ref)
    vm = getattr(request, "vm", None) or getattr(request, "target", None)
    assert vm is None or check_name(vm) == vm


_WIDE = st.characters(codec=None, exclude_categories=())
_FAST = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FAST
@given(st.text(alphabet=_WIDE, max_size=80))
def test_any_text_is_a_request_or_a_grammar_error(text: str) -> None:
    _check(text)


def _words() -> list[str]:
    words = [
        "WEB01",
        "WEB 01",
        "hv01",
        "CHG-12",
        "chg7",
        "24h",
        "0h",
        "1d12h",
        "x",
        "",
        "*",
        "&lt;",
    ]
    for cmd in COMMANDS:
        words += [cmd.name, cmd.name.upper(), *cmd.synonyms[:1], *cmd.examples]
        for param in (*cmd.args, *cmd.options):
            words += [param.key, param.metavar, *param.choices]
            for dash in ("--", "\u2014", "\u2013", "-"):
                words += [f"{dash}{param.key}", f"{dash}{param.key}="]
    return words


_PIECES = st.sampled_from(_words()) | st.sampled_from(
    ['"', "\u201c", "\u201d", "'", "\u2018", "\u2019", "=", "--", "\u2014", "&amp;", "<", ">"]
)
_SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", "\u00a0", ""])


@_FAST
@given(st.lists(st.tuples(_PIECES, _SEPARATORS), max_size=8))
def test_near_valid_commands_are_a_request_or_a_grammar_error(
    pieces: list[tuple[str, str]],
) -> None:
    _check("".join(word + sep for word, sep in pieces))
