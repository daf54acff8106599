"""`/checkpoint help`, generated from the command table so it cannot drift from the parser.

Output is Slack mrkdwn. `help_sections` packs it into pieces that each fit one
Block Kit section (3000 characters); `help_text` is the same text in one string
for places without blocks (the `text` fallback, the CLI playground).
"""

from __future__ import annotations

from handlers.grammar.parser import find_command, usage
from handlers.grammar.table import COMMANDS, SLASH, CommandSpec

__all__ = ["SECTION_LIMIT", "help_sections", "help_text"]

SECTION_LIMIT = 3000  # Block Kit: characters in one section's text


def help_text(topic: str | None = None) -> str:
    """Help for all commands, or for one (`topic`); GrammarError for an unknown topic."""
    return "\n".join(help_sections(topic))


def help_sections(topic: str | None = None, limit: int = SECTION_LIMIT) -> list[str]:
    """The help as mrkdwn sections of at most `limit` characters, split between lines."""
    lines = _overview() if topic is None or not topic.strip() else _one(find_command(topic))
    return _pack(lines, limit)


def _overview() -> list[str]:
    lines = [f"*`{SLASH}`: safe Hyper-V checkpoints.* `{SLASH} help COMMAND` shows one command."]
    for cmd in COMMANDS:
        bare = f"; {cmd.bare_help}" if cmd.bare_help else ""
        lines.append(f"• `{usage(cmd, compact=True)}` {cmd.summary}{bare}")
    lines += ["", "*Examples*"]
    lines += [f"`{SLASH} {cmd.examples[0]}`" for cmd in COMMANDS if cmd.name != "help"]
    return lines


def _one(cmd: CommandSpec) -> list[str]:
    lines = [f"*{SLASH} {cmd.name}*: {cmd.summary}", f"`{usage(cmd)}`"]
    lines += [text for text in (cmd.details, cmd.bare_help and cmd.bare_help + ".") if text]
    if cmd.options:
        lines += ["", "*Options*"]
        lines += [f"• `--{o.key} {o.shown}` {o.help}" for o in cmd.options]
    lines += ["", "*Examples*"] + [f"`{SLASH} {example}`" for example in cmd.examples]
    return lines


def _pack(lines: list[str], limit: int) -> list[str]:
    sections: list[str] = []
    current = ""
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) <= limit:
            current = candidate
            continue
        if current.strip():
            sections.append(current.strip("\n"))
        # Table lines are short; cutting one is a last resort that keeps the limit true.
        while len(line) > limit:
            sections.append(line[:limit])
            line = line[limit:]
        current = line
    if current.strip():
        sections.append(current.strip("\n"))
    return sections
