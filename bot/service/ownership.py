"""Which checkpoints on a host the bot can prove are its own.

A name prefix is not proof: `CHG-n` refs repeat across deployments (staging
and production bots on the same hosts), after a restored backup or a
re-created database, and an admin can type any name in Hyper-V Manager. So
the name the bot gives a checkpoint carries a token drawn at random for the
one create job that takes it, kept in the job's row, and a mark made with
the record's own key (`mark`):

    CHG-0011 (cb-3f9a2c71-9e1b07c4) KB5044284 patch
    └ change ref  └ token └ mark   └ the reason, on one line, cut to fit

The token names the job; the mark proves the deployment when the job is
not in the record (a checkpoint taken after the backup the record was
restored from): only this record's key makes a mark that verifies for
that token, ref and VM, so another deployment's checkpoint, or a copy of
one of ours on another VM, never does. Names from before the mark (no
mark) are judged by their token alone, as they were.

still readable in Hyper-V Manager, and within Hyper-V's name rules (no
control characters; 100 characters; no `*`, `?` or `[` the module's -Name
parameters would read as wildcards).

An interrupted create adopts a checkpoint only with all of it: on the
change's VM, carrying this job's exact token, created (by the host's clock,
with its offset) no earlier than the job's start minus `CLOCK_SKEW`, and
owned by no other change. One such checkpoint is proof; none, several, or
only near misses is a question for a human, never a guess.

Changes from before this format (no token) are matched by their stored
checkpoint Id, as everywhere else; an interrupted create of that era can
only be settled by a human.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain import ChangeRef
from bot.hyperv import Checkpoint
from bot.reasons import one_line

# Clocks of the bot and of a host may disagree by this much.
CLOCK_SKEW = timedelta(seconds=120)
NAME_LIMIT = 100
_TOKEN = re.compile(r"\(cb-([0-9a-f]{8})(?:-([0-9a-f]{8}))?\)")
# What the name must not carry: control characters, and the characters
# PowerShell's wildcard matching gives a meaning to.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f*?\[\]]")


def new_token() -> str:
    """Eight hex digits from the OS's CSPRNG: one per create job."""
    return secrets.token_hex(4)


def mark(key: str, token: str, ref: str, vm_id: str) -> str:
    """Eight hex digits of HMAC-SHA256 under the record's key over what the
    name claims (the job's token, the change's ref) and the VM it is on."""
    said = f"{token}|{ref}|{vm_id.casefold()}".encode()
    return hmac.new(bytes.fromhex(key), said, hashlib.sha256).hexdigest()[:8]


def checkpoint_name(ref: str, token: str, reason: str, marked: str | None = None) -> str:
    """`CHG-0011 (cb-3f9a2c71-9e1b07c4) reason…` (without `marked`, the
    older `CHG-0011 (cb-3f9a2c71) reason…`), at most NAME_LIMIT characters."""
    head = f"{ref} (cb-{token}-{marked})" if marked else f"{ref} (cb-{token})"
    tail = one_line(_UNSAFE.sub(" ", reason))
    name = f"{head} {tail}" if tail else head
    return name[:NAME_LIMIT].rstrip()


def token_of(name: str) -> str | None:
    found = _TOKEN.search(name)
    return found.group(1) if found else None


def marked_ours(key: str | None, checkpoint: Checkpoint) -> bool:
    """Whether the checkpoint's name carries a mark this record's key made
    for its token, its ref and the VM it is on. No key, no mark, no ref:
    not proven (and so never ours by this test)."""
    found = _TOKEN.search(checkpoint.name)
    ref = ref_of(checkpoint.name)
    if key is None or found is None or found.group(2) is None or ref is None:
        return False
    expected = mark(key, found.group(1), ref, checkpoint.vm_id)
    return hmac.compare_digest(expected, found.group(2))


def ref_of(name: str) -> str | None:
    ref = ChangeRef.leading(name)
    # Only as the bot writes it (`CHG-0042`), never a look-alike (`CHG-42`).
    return str(ref) if ref and name.startswith(str(ref)) else None


@dataclass(frozen=True)
class Candidate:
    """A checkpoint that looks like the change's, and why it is (not) proof."""

    checkpoint: Checkpoint
    proven: bool
    why: str


def candidates(
    ref: str,
    token: str | None,
    vm_id: str,
    checkpoints: Sequence[Checkpoint],
    *,
    job_started: datetime | None,
    owned_elsewhere: Collection[str],
    skew: timedelta = CLOCK_SKEW,
) -> list[Candidate]:
    """Every checkpoint that carries the change's ref or the job's token,
    each judged. Pure: the same inputs always give the same verdicts."""
    found: list[Candidate] = []
    for c in checkpoints:
        carried = token_of(c.name)
        if ref_of(c.name) != ref and (token is None or carried != token):
            continue
        when = c.created_at.isoformat(timespec="seconds")
        if c.vm_id != vm_id:
            found.append(Candidate(c, False, f"taken {when} on another VM ({c.vm_id})"))
        elif c.id in owned_elsewhere:
            found.append(Candidate(c, False, f"taken {when}; another change already owns it"))
        elif token is None:
            found.append(Candidate(c, False, f"taken {when}; the job has no token to match"))
        elif carried is None:
            found.append(
                Candidate(c, False, f"taken {when}; named like the change but carries no token")
            )
        elif carried != token:
            found.append(
                Candidate(
                    c,
                    False,
                    f"taken {when}; carries token cb-{carried}, not this job's cb-{token} "
                    "(another deployment's or another job's)",
                )
            )
        elif job_started is None:
            found.append(Candidate(c, False, f"taken {when}; the job's start is not recorded"))
        elif c.created_at < job_started - skew:
            started = job_started.isoformat(timespec="seconds")
            found.append(Candidate(c, False, f"taken {when}, before this job started ({started})"))
        else:
            found.append(Candidate(c, True, f"taken {when}, carries this job's token"))
    return found


def proven(found: Sequence[Candidate]) -> Checkpoint | None:
    """The one proven candidate, or None (none, or more than one)."""
    ok = [c.checkpoint for c in found if c.proven]
    return ok[0] if len(ok) == 1 else None
