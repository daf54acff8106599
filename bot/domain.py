"""The domain's words that more than one layer speaks, defined once.

A leaf module: it imports nothing from the bot, so the policy rules, the
inventory, the service and the templates can all name the same things.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass


class Role(enum.StrEnum):
    """What a VM does, as far as the guardrails care."""

    DOMAIN_CONTROLLER = "domain_controller"
    READ_ONLY_DOMAIN_CONTROLLER = "read_only_domain_controller"
    CLUSTER_NODE = "cluster_node"
    SQL_SERVER = "sql_server"
    SQL_AG_REPLICA = "sql_ag_replica"
    EXCHANGE_SERVER = "exchange_server"
    EXCHANGE_DAG_MEMBER = "exchange_dag_member"
    DFSR_MEMBER = "dfsr_member"
    FILE_SERVER = "file_server"
    CERTIFICATE_AUTHORITY = "certificate_authority"
    WEB = "web"
    APP = "app"
    OTHER = "other"


# What each role is, in the words a person reads in Slack or on the CLI
# ("CORP-DC01 is a domain controller"): a refusal names the role this way,
# never by its inventory id. Defined once, so every rule says it alike.
ROLE_WORDS: dict[Role, str] = {
    Role.DOMAIN_CONTROLLER: "a domain controller",
    Role.READ_ONLY_DOMAIN_CONTROLLER: "a read-only domain controller",
    Role.CLUSTER_NODE: "a guest failover cluster node",
    Role.SQL_SERVER: "a SQL Server",
    Role.SQL_AG_REPLICA: "a SQL Server Always On availability group replica",
    Role.EXCHANGE_SERVER: "an Exchange server",
    Role.EXCHANGE_DAG_MEMBER: "an Exchange DAG member",
    Role.DFSR_MEMBER: "a DFS Replication member",
    Role.FILE_SERVER: "a file server",
    Role.CERTIFICATE_AUTHORITY: "a certificate authority",
    Role.WEB: "a web server",
    Role.APP: "an application server",
    Role.OTHER: "a server with no role the guardrails know",
}


# By the id as written: the policy's rules name roles on every decision, and
# a dict lookup costs less than making the enum member first.
_WORDS_BY_ID: dict[str, str] = {role.value: words for role, words in ROLE_WORDS.items()}


def role_words(role: str) -> str:
    """A role id (as the inventory and the policy write it) in a person's
    words; an id the enum does not know is shown as written."""
    return _WORDS_BY_ID.get(role, role)


def roles_words(roles: Iterable[str]) -> str:
    """Several roles as one phrase: "a domain controller and a SQL Server"."""
    words = [role_words(r) for r in roles]
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


class ApprovalState(enum.StrEnum):
    """Where one approval request stands. Only a pending request may be
    decided; the others say how it was settled."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    # The policy refused it when it was decided again at approval time.
    REFUSED = "refused"
    # A newer request for the same change took its place.
    SUPERSEDED = "superseded"
    # Its requester took it back before anyone decided it.
    WITHDRAWN = "withdrawn"


# What an approval request can ask for: the words `change approve --request`
# accepts. Here, not in the service, so the CLI can declare its choices
# without loading the service (bench/cli_start.py).
APPROVAL_ACTIONS = ("create", "rollback", "merge", "extend")
# What a patch wave asks for as a whole, after its checkpoints: `batch
# rollback` and `batch merge` (docs/batches.md).
WAVE_ACTIONS = ("rollback", "merge")

# Who a change's event names as its actor when no person did it (a person
# is their Slack user id, U0123ABCD, or `cli:NAME`): the record and the
# audit export keep these words, and `audit export --actor` takes them.
# The policy decided a request (its verdict, a rollback waiting for
# approval, an extension refused; the person is `details.on_behalf_of`).
POLICY_ACTOR = "policy"
# The bot's own work: a job's steps on the host, the TTL chase's reminders
# and automatic merge, a VM followed where it moved, a checkpoint found gone.
BOT_ACTOR = "checkpoint-bot"
# The job queue: a job waiting for the queue to answer, then handed over.
JOBS_ACTOR = "jobs"
# The reconciler settling an interrupted change against its host.
RECONCILER_ACTOR = "reconciler"
SYSTEM_ACTORS = (POLICY_ACTOR, BOT_ACTOR, JOBS_ACTOR, RECONCILER_ACTOR)
# How an option that takes an actor says what it takes.
ACTOR_FORMS = (
    "a Slack user id (U0123ABCD or <@U0123ABCD>), cli:NAME, "
    + ", ".join(SYSTEM_ACTORS[:-1])
    + f" or {SYSTEM_ACTORS[-1]}"
)


class CheckpointKind(enum.StrEnum):
    """The checkpoint a person asks for, in the product's words; each names
    a value of Hyper-V's `CheckpointType` VM setting (`Set-VM -CheckpointType`,
    https://learn.microsoft.com/powershell/module/hyper-v/set-vm)."""

    PRODUCTION = "production"
    PRODUCTION_ONLY = "production-only"
    STANDARD = "standard"

    @classmethod
    def parse(cls, text: str) -> CheckpointKind | None:
        """The kind a word names (any case, surrounding blanks ignored), or None."""
        word = text.strip().lower()
        return next((kind for kind in cls if kind.value == word), None)

    def taken_as_asked(self, taken: str) -> bool:
        """Whether a checkpoint of kind `taken` is what asking for this kind
        should give: production-only gives a production checkpoint or none
        (Hyper-V never falls back to standard), so a production one is it;
        production falling back to standard is not."""
        if self is CheckpointKind.PRODUCTION_ONLY:
            return taken == CheckpointKind.PRODUCTION.value
        return taken == self.value


# The kinds as people write them (`production-only`): what a CLI option
# offers (a Choice of the enum itself would offer its member names,
# `production_only`, from Click 8.2 on).
KIND_WORDS: tuple[str, ...] = tuple(kind.value for kind in CheckpointKind)
# What `checkpoint settings --type` may set on a VM: a kind, or no checkpoints.
DISABLED = "disabled"
SETTING_WORDS: tuple[str, ...] = (*KIND_WORDS, DISABLED)


# A Hyper-V id (a VM's VMId, a checkpoint's Id): a GUID, which PowerShell
# prints as 8-4-4-4-12 hex digits, lower case and without braces
# (https://learn.microsoft.com/dotnet/api/system.guid.tostring, format "D").
# People, files and other tools may write it in upper case or in braces
# (format "B"); the bot keeps and compares the "D" form only.
_GUID_WRITTEN = re.compile(r"\{?([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\}?\Z")
_GUID_CANONICAL = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}\Z")


def canonical_guid(text: str) -> str | None:
    """`text` (blanks around it, any case, braces or none) as a GUID in the
    form the bot keeps, or None when it is not one."""
    match = _GUID_WRITTEN.match(text.strip())
    return match.group(1).lower() if match is not None else None


def is_canonical_guid(value: object) -> bool:
    """Whether `value` is already a GUID in the kept form, and nothing else:
    what may travel to a host inside a WQL filter (only hex and dashes)."""
    return isinstance(value, str) and _GUID_CANONICAL.match(value) is not None


# A change's ref in text people type: `CHG-0042`, `chg-42`, `CHG42`. Nine
# digits at most: a change id is a 32-bit integer in the record. Zeros in
# front do not count: `CHG-0000000042` is CHG-0042.
REF_MAX_DIGITS = 9
TOO_MANY_DIGITS = f"change ids have at most {REF_MAX_DIGITS} digits"
_REF_TYPED = re.compile(r"CHG-?0*([0-9]{1,9})", re.IGNORECASE)
# Typed like one, whatever the number (`CHG-99999999999` names no change).
_REF_SHAPE = re.compile(r"CHG-?[0-9]+", re.IGNORECASE)
# A ref as the bot writes it, at the start of a checkpoint's name.
_REF_WRITTEN = re.compile(r"CHG-([0-9]{1,9})\b")
# The same, inside values the bot builds (button values).
REF_WRITTEN_PATTERN = r"CHG-[0-9]+"


def ref_text(change_id: int) -> str:
    """The written form of a change's ref (`CHG-0042`), without building a
    `ChangeRef`: the audit export writes one per event."""
    return f"CHG-{change_id:04d}"


@dataclass(frozen=True, order=True)
class ChangeRef:
    """A change as people see it: `CHG-0042` is the change with id 42."""

    id: int

    def __str__(self) -> str:
        return ref_text(self.id)

    @classmethod
    def parse(cls, text: str) -> ChangeRef | None:
        """What a person typed (`CHG-0042`, `chg-42`, `CHG42`, blanks around
        ignored), or None."""
        found = _REF_TYPED.fullmatch(text.strip())
        return cls(int(found.group(1))) if found else None

    @classmethod
    def typed(cls, text: str) -> bool:
        """Whether `text` is written as a change ref, even one whose number
        no change could have: it names a change, never a VM."""
        return _REF_SHAPE.fullmatch(text.strip()) is not None

    @classmethod
    def too_long(cls, text: str) -> bool:
        """Whether `text` is written as a change ref whose number has more
        digits than any change id (REF_MAX_DIGITS): a ref no change can
        have, told apart from one the record merely lacks."""
        return cls.typed(text) and cls.parse(text) is None

    @classmethod
    def leading(cls, text: str) -> ChangeRef | None:
        """The ref the bot wrote at the start of `text` (a checkpoint name:
        upper case, with the dash), or None."""
        found = _REF_WRITTEN.match(text)
        return cls(int(found.group(1))) if found else None


# --- people, groups and channels in text the bot writes ---------------------------
#
# Slack notifies and highlights only its mention syntax: `<@U…>` for a user,
# `<!subteam^S…>` for a user group, `<#C…>` for a channel
# (https://api.slack.com/reference/surfaces/formatting#mentioning-users).
# The policy and the service write people with these helpers; Slack's
# templates keep exactly these tokens (and escape everything else), the CLI
# shows them as plain names. Text a person wrote never goes through them.

_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_GROUP_ID = re.compile(r"^S[A-Z0-9]{2,}$")
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
# Exactly the tokens the helpers below write, nothing looser.
MENTION_TOKEN = re.compile(
    r"<@([UW][A-Z0-9]{2,})>|<!subteam\^(S[A-Z0-9]{2,})>|<#([CG][A-Z0-9]{2,})>"
)


# How long a CLI operator's name (CHECKPOINT_BOT_USER) may be: as long as a
# VM name may be (bot.inventory.names.MAX_NAME_LENGTH; a Slack user id is
# about 11). It is the requester and actor of every record the CLI writes,
# and a column of every listing, which a longer one would pad to its length.
OPERATOR_NAME_LIMIT = 64


def operator_name_problem(name: str, subject: str) -> str | None:
    """What is wrong with `name` as a CLI operator's name (`cli:NAME`),
    a sentence about `subject` (where the name came from); None when it may
    be recorded. One word: `--actor cli:NAME` and `--requester` take one,
    and a control character would reach the terminal of whoever reads the
    record."""
    if len(name) > OPERATOR_NAME_LIMIT:
        return f"{subject} is {len(name)} characters long: at most {OPERATOR_NAME_LIMIT}"
    if any(c.isspace() or not c.isprintable() for c in name):
        return f"{subject} {name!r} has a space or a control character: use one word"
    return None


def user_mention(user: str) -> str:
    """`<@U…>` for a Slack user id; `@name` for anyone else (`cli:alice`)."""
    return f"<@{user}>" if _USER_ID.match(user) else f"@{user}"


def group_mention(group: str) -> str:
    """`<!subteam^S…>` for a Slack user group id; the name as it is otherwise."""
    return f"<!subteam^{group}>" if _GROUP_ID.match(group) else group


def names_someone(user: str) -> bool:
    """Whether a policy's `users:` value can match a principal: a Slack user
    id (U… or W…), a CLI operator (`cli:NAME`), or `*` (anyone)."""
    return (
        user == "*"
        or _USER_ID.match(user) is not None
        or (user.startswith("cli:") and len(user) > len("cli:"))
    )


def is_group_id(group: str) -> bool:
    """Whether a policy's `groups:` value is a Slack user-group id (S…) or `*`."""
    return group == "*" or _GROUP_ID.match(group) is not None


def is_channel_id(text: str) -> bool:
    """Whether `text` is a Slack channel id (C…, or G… for an older private
    channel), what every Slack method takes; a name (`#ops`) is not: newer
    methods such as chat.update accept ids only
    (https://api.slack.com/methods/chat.update)."""
    return _CHANNEL_ID.match(text) is not None


def checked_channel_id(text: str) -> str:
    """`text` when it is a channel id; else ValueError saying what would be
    right (the config's and the policy's validators)."""
    if not is_channel_id(text):
        raise ValueError(
            f"{text!r} is not a Slack channel id: give the id (C0123ABCD; a channel's "
            "details in Slack show it at the bottom), not its name"
        )
    return text


def channel_mention(channel: str) -> str:
    """`<#C…>` for a Slack channel id; `#name` otherwise."""
    if _CHANNEL_ID.match(channel):
        return f"<#{channel}>"
    return channel if channel.startswith("#") else f"#{channel}"


def plain_mentions(text: str) -> str:
    """Mention tokens as readable words, for the terminal and logs."""

    def word(found: re.Match[str]) -> str:
        user, group, channel = found.groups()
        return f"@{user}" if user else (f"@{group}" if group else f"#{channel}")

    return MENTION_TOKEN.sub(word, text)


# A batch's ref in text people type: `BAT-0007`, `bat-7`, `BAT7` (nine
# digits at most, as a change's), and typed like one whatever the number.
_BATCH_TYPED = re.compile(r"BAT-?([0-9]{1,9})", re.IGNORECASE)
_BATCH_SHAPE = re.compile(r"BAT-?[0-9]+", re.IGNORECASE)


@dataclass(frozen=True, order=True)
class BatchRef:
    """A batch (a patch wave: one request over several VMs) as people see
    it: `BAT-0007` is the batch with id 7 (docs/batches.md)."""

    id: int

    def __str__(self) -> str:
        return f"BAT-{self.id:04d}"

    @classmethod
    def parse(cls, text: str) -> BatchRef | None:
        """What a person typed (`BAT-0007`, `bat-7`, `BAT7`), or None."""
        found = _BATCH_TYPED.fullmatch(text.strip())
        return cls(int(found.group(1))) if found else None

    @classmethod
    def typed(cls, text: str) -> bool:
        """Whether `text` is written as a batch ref, even one whose number
        no batch could have."""
        return _BATCH_SHAPE.fullmatch(text.strip()) is not None


def single_vm(
    names: Iterable[str], *, tags: Iterable[str] = (), adders: Iterable[str] = ()
) -> str | None:
    """The VM a create asks for when it names exactly one VM and nothing
    else: a single checkpoint (CHG-n). Several names, any `--tag`, or a
    `--group`, `--host` or `--cluster` make a patch wave (BAT-n,
    docs/batches.md), even of one VM. Blank names and blank adders count
    for nothing; a tag counts as typed (a blank one is the wave's error to
    report). The Slack command and the CLI decide with this, before either
    resolves anything against the inventory."""
    named = [name.strip() for name in names if name.strip()]
    if len(named) != 1 or any(True for _ in tags) or any(a.strip() for a in adders):
        return None
    return named[0]
