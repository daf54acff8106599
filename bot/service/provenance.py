"""Where a checkpoint no change owns came from, as far as its name proves:
one of this bot's create jobs (a checkpoint that came after its change was
settled), a copy named after one of them, one of this deployment's whose
job the record lacks (its mark verifies under the record's key: taken
after the backup the record was restored from), another checkpoint-bot
deployment's (a token none of this bot's jobs drew, and no mark of ours),
or nothing (no token: made by hand, or by a bot older than the tokens;
bot.service.ownership)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from bot.changes.record import parse_ref
from bot.hyperv import Checkpoint
from bot.service.ownership import marked_ours, ref_of, token_of
from bot.store.tables import change_ref
from bot.store.tables.deployment import DeploymentKey
from bot.store.tables.jobs import Job


def deployment_key(s: Session) -> str | None:
    """The record's own key (migration 0021 draws it), or None: a record
    without one marks nothing and proves nothing by a mark."""
    row = s.get(DeploymentKey, 1)
    return row.key if row is not None else None


def unrecorded_but_ours(s: Session, checkpoint: Checkpoint) -> bool:
    """A checkpoint whose token no job in this record drew, yet whose mark
    this record's key made: one of ours the record lost track of."""
    return marked_ours(deployment_key(s), checkpoint)


def made_by(s: Session, checkpoint: Checkpoint) -> int | None:
    """The change whose create job made this checkpoint (its name is the one
    that job gives: the change's ref and the token the job drew), or None."""
    token = token_of(checkpoint.name)
    ref = ref_of(checkpoint.name) if token is not None else None
    change_id = parse_ref(ref) if ref else None
    if change_id is None:
        return None
    jobs = s.exec(select(Job).where(Job.change_id == change_id, Job.kind == "create")).all()
    return change_id if any(j.payload.get("token") == token for j in jobs) else None


def drawn_by(s: Session, token: str) -> int | None:
    """The change one of whose create jobs drew `token`, or None: none of
    this bot's jobs did (another deployment's)."""
    return s.exec(
        select(Job.change_id)
        .where(Job.kind == "create", col(Job.payload)["token"].as_string() == token)
        .limit(1)
    ).first()


def provenance(s: Session, checkpoint: Checkpoint) -> tuple[bool, str]:
    """(foreign, what the name proves) for a checkpoint no change owns: its
    token is one of our create jobs' (a create whose checkpoint came after
    its change was settled), another deployment's, or absent (made by hand,
    or by a bot older than the tokens)."""
    token = token_of(checkpoint.name)
    if token is None:
        return False, ""
    change_id = made_by(s, checkpoint)
    if change_id is not None:
        return False, f"left by {change_ref(change_id)}'s create job (token cb-{token})"
    # Seen: a checkpoint made by hand and named after one of ours ("before
    # CHG-0001 (cb-5101f72d) patch A") was called another deployment's, and
    # could not be adopted. Its token is one our create job drew, so it is
    # this deployment's estate: an orphan someone named after that change,
    # never that change's checkpoint (its name is not the job's).
    drew = drawn_by(s, token)
    if drew is not None:
        return False, (
            f"carries {change_ref(drew)}'s token cb-{token} under a name its create job does "
            "not give (made or renamed by hand)"
        )
    if unrecorded_but_ours(s, checkpoint):
        # Seen: after a restore from a backup, the checkpoints taken since
        # were called another deployment's and could not be adopted.
        return False, (
            f"carries token cb-{token} with this deployment's mark, but its create job is "
            "not in the record (taken after the backup it was restored from?)"
        )
    return True, (
        f"carries token cb-{token}, which none of this bot's jobs drew: another "
        "checkpoint-bot deployment's"
    )
