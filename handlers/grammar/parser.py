"""The `/checkpoint` slash-command grammar: text in, a typed request out.

Pure: no I/O, no Slack client, no inventory. VM names are checked with the
inventory's name rules (so wildcards and metacharacters never get further) but
not resolved; the service resolves them and says "no VM named ..." itself.

This module binds words to the table (`table`), using `tokens` to split Slack
text into words; `requests` holds what parsing produces; `help` renders the
table as help. The package's `__init__` is the public face of all of them.
"""

from __future__ import annotations

import difflib

from bot.domain import BatchRef
from bot.durations import DurationError, parse_duration
from bot.inventory.errors import InvalidName
from bot.inventory.names import check_name
from bot.reasons import ReasonError, check_reason
from handlers.grammar.requests import (
    GrammarError,
    HelpRequest,
    SlashRequest,
)
from handlers.grammar.table import (
    BY_NAME,
    COMMANDS,
    SLASH,
    CommandSpec,
    Invalid,
    Kind,
    Param,
    Values,
    either,
    normalize_batch_ref,
    normalize_change_ref,
)
from handlers.grammar.tokens import Token, Unterminated, option_parts, tokenize, unescape_slack
from templates import mrkdwn_escape


def usage(command: str | CommandSpec, *, compact: bool = False) -> str:
    """`/checkpoint create VM [--type ...] ...`; `compact` shows option metavars, not choices."""
    cmd = command if isinstance(command, CommandSpec) else find_command(command)
    words = [SLASH, cmd.name]
    for arg in cmd.args:
        shown = arg.metavar if compact and arg.choices else arg.shown
        words.append(shown if arg.required else f"[{shown}]")
    for opt in cmd.options:
        shown = f"--{opt.key} {opt.metavar if compact else opt.shown}"
        words.append(shown if opt.needed else f"[{shown}]")
    return " ".join(words)


def find_command(name: str) -> CommandSpec:
    """The command called `name` (any case), or a GrammarError suggesting close ones."""
    found = BY_NAME.get(name.strip().lower())
    if found is not None:
        return found
    words = {c.name: c.name for c in COMMANDS} | {s: c.name for c in COMMANDS for s in c.synonyms}
    # 0.7 keeps real typos ("craete", "stauts", "windwos") and drops look-alikes.
    close = difflib.get_close_matches(name.lower(), list(words), n=2, cutoff=0.7)
    suggestions = list(dict.fromkeys(words[w] for w in close))
    tail = (
        f"did you mean {either(suggestions)}?"
        if suggestions
        else f"the commands are {', '.join(c.name for c in COMMANDS)}"
    )
    raise GrammarError(f"unknown command {_echo(name)}; {tail}", f"Try {SLASH} help.")


def parse(text: str) -> SlashRequest:
    """Parse what follows `/checkpoint` (as Slack sends it); raises GrammarError."""
    plain = unescape_slack(text)
    try:
        tokens = tokenize(plain)
    except Unterminated as exc:
        first = plain.split(maxsplit=1)
        known = BY_NAME.get(first[0].lower()) if first else None
        close = {"\u201c": "\u201d", "\u2018": "\u2019"}.get(exc.opener, exc.opener)
        raise GrammarError(
            f"unterminated quote: the {exc.opener} before {_echo(exc.fragment)} is never "
            f"closed; add a closing {close} or leave the quotes out",
            f"Usage: {usage(known)}" if known else f"Try {SLASH} help.",
            command=known.name if known else None,
        ) from None
    if not tokens:
        return HelpRequest()
    cmd = find_command(tokens[0].text)
    if len(tokens) == 1 and cmd.bare is not None:
        return cmd.bare()
    try:
        bound = _bind(cmd, tokens[1:])
        return bound if isinstance(bound, HelpRequest) else cmd.build(bound)
    except Invalid as exc:
        raise GrammarError(exc.message, f"Usage: {usage(cmd)}", command=cmd.name) from None


def _bind(cmd: CommandSpec, tokens: list[Token]) -> Values | HelpRequest:
    values: dict[str, str] = {}
    positional: list[Token] = []
    i = 0
    while i < len(tokens):
        parts = option_parts(tokens[i])
        i += 1
        if parts is None:
            positional.append(tokens[i - 1])
            continue
        name, inline = parts
        if name.lower() == "help":
            return HelpRequest(cmd.name)
        opt = _option(cmd, name)
        if opt.key in values:
            raise Invalid(f"--{opt.key} is given twice; give it once")
        words = [] if inline is None else [inline]
        # A text option runs to the next option, so `--reason patching KB1 --ttl 4h`
        # needs no quotes; other options take exactly one value.
        while (
            i < len(tokens)
            and option_parts(tokens[i]) is None
            and (opt.kind is Kind.TEXT or not words)
        ):
            words.append(tokens[i].text)
            i += 1
        if not words or not "".join(words).strip():
            raise Invalid(f"--{opt.key} needs a value, e.g. --{opt.key} {opt.example}")
        values[opt.key] = _convert(cmd, opt, " ".join(words))
    if (
        cmd.either_order
        and len(positional) == 2
        and _is_choice(cmd.args[1], positional[0])
        and not _is_choice(cmd.args[1], positional[1])
    ):
        positional.reverse()
    for arg, token in zip(cmd.args, positional, strict=False):
        values[arg.key] = _convert(cmd, arg, token.text)
    extra = positional[len(cmd.args) :]
    if extra and cmd.rest is None:
        raise Invalid(_too_many(cmd, extra[0].text))
    if extra and cmd.rest is not None and cmd.rest.key in values and cmd.more is not None:
        more = cmd.more
        values[more.key] = " ".join(_convert(cmd, more, t.text) for t in extra)
        extra = []
    if extra and cmd.rest is not None:
        said = " ".join(t.text for t in extra)
        if cmd.rest.key in values:
            raise Invalid(
                f"the {cmd.rest.key} is given twice: as words after the {cmd.args[-1].metavar} "
                f"({_echo(said)}) and with --{cmd.rest.key}; keep one"
            )
        values[cmd.rest.key] = _convert(cmd, cmd.rest, said)
    for arg in cmd.args[len(positional) :]:
        if arg.required:
            bare = f" ({cmd.bare_help})" if cmd.bare_help else ""
            raise Invalid(f"{cmd.name} needs {arg.noun}, e.g. {SLASH} {cmd.examples[0]}{bare}")
    return Values(values)


def _option(cmd: CommandSpec, name: str) -> Param:
    found = cmd.option(name.lower())
    if found is not None:
        return found
    shown = mrkdwn_escape(_visible(f"--{name}"))
    if not cmd.options:
        raise Invalid(f"{cmd.name} takes no options, so {shown} is not understood")
    keys = [o.key for o in cmd.options]
    close = difflib.get_close_matches(name.lower(), keys, n=1, cutoff=0.6)
    tail = (
        f"did you mean --{close[0]}?" if close else f"it takes {either(['--' + k for k in keys])}"
    )
    raise Invalid(f"unknown option {shown} for {cmd.name}; {tail}")


# What a wave's card does where a command of one change was given a wave:
# its button, or that the wave has none (as the CLI says, bot.service.finding).
_WAVE_BUTTON = {
    "rollback": "Roll back all",
    "merge": "Keep & merge all",
    "approve": "Approve all",
}


def _wave_for_one_change(command: str, wave: str) -> str:
    """What to say when `command`, which acts on one change, is given a
    wave's ref. The parser has no database, so it cannot tell whether that
    wave exists: the words say what a BAT-n is and where a wave is acted
    on, never that this one is a wave (`/checkpoint batch` says whether)."""
    said = f"{wave} is a patch wave's id (BAT-n), not a change's (CHG-n)"
    if command in _WAVE_BUTTON:
        return (
            f"{said}: *{_WAVE_BUTTON[command]}* on {SLASH} batch {wave} acts on all the "
            "wave's members, if there is one; or give one member's CHG-n"
        )
    if command in ("extend", "reject"):
        done = "extended" if command == "extend" else "rejected"
        return (
            f"{said}, and a wave is not {done} as a whole: {command} each member by its CHG-n "
            f"({SLASH} batch {wave} lists them, if there is one"
            + ("; each has its Extend)" if command == "extend" else ")")
        )
    return (
        f"{said}: {SLASH} batch {wave} shows the wave, if there is one, and acts on all "
        "its members; or give one member's CHG-n"
    )


def _convert(cmd: CommandSpec, param: Param, text: str) -> str:
    """The validated, normalised value of one argument or option."""
    kind = param.kind
    if kind in (Kind.CHANGE, Kind.CHANGE_OR_VM) and BatchRef.typed(text):
        wave = BatchRef.parse(text)
        wave_ref = str(wave) if wave is not None else mrkdwn_escape(text.strip().upper())
        raise Invalid(_wave_for_one_change(cmd.name, wave_ref))
    try:
        if kind is Kind.VM:
            return check_name(text.strip(), kind="VM")
        if kind is Kind.TARGET:
            return check_name(text.strip(), kind="VM, host, cluster or group")
        if kind is Kind.CHANGE_OR_VM:
            return normalize_change_ref(text) or check_name(text.strip(), kind="VM")
    except InvalidName as exc:
        raise Invalid(mrkdwn_escape(str(exc))) from None
    if kind is Kind.DURATION:
        try:
            parse_duration(text)
        except DurationError as exc:
            # Its own text, with the input shortened and made visible first.
            shown = DurationError(
                _visible(text), too_long=exc.too_long, not_positive=exc.not_positive
            )
            raise Invalid(mrkdwn_escape(str(shown))) from None
        return text.strip()
    if kind is Kind.CHANGE:
        ref = normalize_change_ref(text)
        if ref is None:
            raise Invalid(
                f"{_echo(text)} is not a change id; {cmd.name} needs one like CHG-0042 "
                f"({SLASH} status alone lists the open ones)"
            )
        return ref
    if kind is Kind.NAME:
        try:
            # Said with the option's own word: "group name '<x' contains '<'…",
            # "tag 'env=<x' …" (--group, --host, --cluster, --tag).
            return check_name(text.strip(), kind=param.key)
        except InvalidName as exc:
            raise Invalid(mrkdwn_escape(str(exc))) from None
    if kind is Kind.CHANGE_OR_BATCH:
        either_ref = normalize_change_ref(text) or normalize_batch_ref(text)
        if either_ref is None:
            raise Invalid(
                f"{_echo(text)} is neither a change id nor a batch id; {cmd.name} needs one "
                "like CHG-0042 or BAT-0007"
            )
        return either_ref
    if kind is Kind.BATCH:
        batch = normalize_batch_ref(text)
        change = normalize_change_ref(text) if batch is None else None
        if change is not None:
            raise Invalid(
                f"{change} is one change, not a patch wave; {SLASH} status {change} shows it"
            )
        if batch is None:
            raise Invalid(f"{_echo(text)} is not a batch id; {cmd.name} needs one like BAT-0007")
        return batch
    if kind is Kind.CHOICE:
        return _choice(cmd, param, text)
    if kind is Kind.COMMAND:
        return find_command(text).name
    return _plain_text(param, text)


def _is_choice(param: Param, token: Token) -> bool:
    return token.text.strip().lower() in param.choices


def _choice(cmd: CommandSpec, param: Param, text: str) -> str:
    value = text.strip().lower()
    if value in param.choices:
        return value
    label = f"--{param.key}" if param in cmd.options else f"the {param.key}"
    # A prefix ("prod") is the commonest short form, and difflib scores it low.
    close = [c for c in param.choices if value and c.startswith(value)]
    close = close or difflib.get_close_matches(value, param.choices, n=1, cutoff=0.6)
    tail = f"; did you mean {close[0]}?" if close else ""
    raise Invalid(f"{label} must be {either(param.choices)}, not {_echo(text)}{tail}")


def _plain_text(param: Param, text: str) -> str:
    # The same check as the modal's and the CLI's: kept as written, printable.
    try:
        return check_reason(text, what=param.key)
    except ReasonError as exc:
        raise Invalid(mrkdwn_escape(exc.message)) from None


def _too_many(cmd: CommandSpec, extra: str) -> str:
    if not cmd.args:
        return f"{cmd.name} takes no arguments, so {_echo(extra)} is not understood"
    takes = " ".join(a.shown for a in cmd.args)
    names = any(a.kind in (Kind.VM, Kind.TARGET, Kind.CHANGE_OR_VM) for a in cmd.args)
    quote = ' (quote a name with spaces: "WEB 01")' if names else ""
    return f"{cmd.name} takes {takes}, so {_echo(extra)} is one too many{quote}"


def _visible(text: str, limit: int = 40) -> str:
    """User input shortened, with invisible characters shown as escapes (not yet escaped)."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in short)


def _echo(text: str) -> str:
    """User input quoted for a mrkdwn message."""
    return f"'{mrkdwn_escape(_visible(text))}'"
