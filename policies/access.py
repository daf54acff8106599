"""Who may do what, where; and who may approve (Errbot-style pure filters).

Admins may do everything. Each permission lists users, Slack user groups and
channels; "*" means anyone. The requester never counts as an approver.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.domain import channel_mention, group_mention, user_mention
from policies.model import (
    ApprovalRequirement,
    Decision,
    Effect,
    Fact,
    Facts,
    OutcomeKind,
    Permission,
    RuleOutcome,
)
from policies.policy import Policy
from policies.registry import PERMISSIONS_RULE
from policies.rules.schedule import ApprovalsParams
from policies.schema import Principals

__all__ = [
    "CLI_OPERATOR",
    "approvers_for",
    "authorize",
    "check_approver",
    "is_admin",
    "refused_approvers",
    "unapprovable_outcome",
]

# How the CLI names its operator: `cli:NAME` (bot.cli.runtime).
CLI_OPERATOR = "cli:"


def is_admin(policy: Policy, principal: str, groups: Iterable[str]) -> bool:
    return _listed(policy.admins, principal, frozenset(groups))


def _listed(who: Principals, principal: str, groups: frozenset[str]) -> bool:
    return (
        "*" in who.users
        or "*" in who.groups
        or principal in who.users
        or bool(groups & set(who.groups))
    )


def _who(who: Principals) -> str:
    if "*" in who.users or "*" in who.groups:
        return "anyone"
    items = [user_mention(u) for u in who.users] + [
        f"members of {group_mention(g)}" for g in who.groups
    ]
    return ", ".join(items) or "admins only"


def authorize(
    policy: Policy,
    permission: Permission | str,
    facts: Facts,
    principal: str,
    groups: Iterable[str] = (),
    channel: str | None = None,
) -> RuleOutcome:
    """May `principal` (in `groups`, asking from `channel`) do `permission`?

    Returns the `permissions` rule's outcome: PASSED with who allowed it, or
    FIRED (deny) saying who may instead. Permissions are not scoped per VM
    (yet), so `facts` are not consulted; the signature keeps that door open.
    """
    perm = permission if isinstance(permission, Permission) else Permission(permission)
    member_of = groups if isinstance(groups, frozenset) else frozenset(groups)
    # The answer depends on the policy (immutable) and these four alone:
    # worked out once per asker, then the same outcome object each time.
    key = (_AUTHORIZED, perm, principal, member_of, channel)
    found: RuleOutcome | None = policy.memo.get(key)
    if found is None:
        found = _authorize(policy, perm, principal, member_of, channel)
        if len(policy.memo) < _MEMO_KEPT:
            policy.memo[key] = found
    return found


_AUTHORIZED = "access.authorize"
# Distinct askers (person x groups x channel) remembered per policy.
_MEMO_KEPT = 4096


def _authorize(
    policy: Policy,
    perm: Permission,
    principal: str,
    member_of: frozenset[str],
    channel: str | None,
) -> RuleOutcome:
    used = {
        "requester": Fact(principal, "request"),
        # A tuple: this outcome is shared by every decision of the same asker.
        "requester_groups": Fact(tuple(sorted(member_of)), "slack user groups"),
        "channel": Fact(channel, "request"),
    }
    allowed = policy.permission(perm)
    if principal.startswith(CLI_OPERATOR) and not allowed.cli:
        # Before the admin check: the CLI names its operator by an
        # environment variable, so an admin's name proves nothing there.
        return RuleOutcome(
            PERMISSIONS_RULE,
            OutcomeKind.FIRED,
            Effect.DENY,
            f"{perm.value} is not allowed from the CLI (permissions.{perm.value}.cli: false): "
            "the CLI's operator is whoever CHECKPOINT_BOT_USER or $USER names",
            f"{perm.value} in Slack, where Slack vouches for who you are",
            used,
        )
    if is_admin(policy, principal, member_of):
        return RuleOutcome(
            PERMISSIONS_RULE,
            OutcomeKind.PASSED,
            None,
            f"{user_mention(principal)} is an admin",
            facts=used,
        )
    if not _listed(allowed, principal, member_of):
        return RuleOutcome(
            PERMISSIONS_RULE,
            OutcomeKind.FIRED,
            Effect.DENY,
            f"{user_mention(principal)} may not {perm.verb}: allowed are {_who(allowed)}",
            "ask an admin to add you to the policy's permissions, or ask someone allowed",
            used,
        )
    channels = allowed.channels
    if channels and "*" not in channels and channel not in channels:
        where = f"in {channel_mention(channel)}" if channel else "outside Slack channels"
        only = ", ".join(channel_mention(c) for c in channels)
        return RuleOutcome(
            PERMISSIONS_RULE,
            OutcomeKind.FIRED,
            Effect.DENY,
            f"{perm.verb} is not allowed {where}: only in {only}",
            f"ask again in {channel_mention(channels[0])}",
            used,
        )
    return RuleOutcome(
        PERMISSIONS_RULE,
        OutcomeKind.PASSED,
        None,
        f"{user_mention(principal)} may {perm.verb}"
        + (f" in {channel_mention(channel)}" if channel else ""),
        facts=used,
    )


def approvers_for(
    policy: Policy, facts: Facts, requester: str, required: int = 1
) -> ApprovalRequirement:
    """Who may approve for this VM: the approvals rule's users and groups for
    its scope, else whoever holds the `approve` permission; admins always."""
    params = policy.rule_settings("approvals", facts)[0].params
    assert isinstance(params, ApprovalsParams)
    users, groups = list(params.users), list(params.groups)
    if not users and not groups:
        fallback = policy.permission(Permission.APPROVE)
        users, groups = list(fallback.users), list(fallback.groups)
    users += [u for u in policy.admins.users if u not in users]
    groups += [g for g in policy.admins.groups if g not in groups]
    return ApprovalRequirement(
        max(1, required), tuple(users), tuple(groups), excluded=(requester,), dm=params.dm
    )


_ASKED = {
    "create": "this checkpoint",
    "rollback": "this rollback",
    "merge": "this merge",
    "extend": "this extension",
}


def check_approver(
    decision_or_requirement: Decision | ApprovalRequirement,
    approver: str,
    groups: Iterable[str],
    requester: str,
    verb: str = "approve",
    action: str | None = None,
) -> tuple[bool, str]:
    """May `approver` give one of the approvals (or, `verb` "reject", refuse
    it)? (ok, why) — the why is for the person who clicked, in the words of
    what they did; `action` (create, rollback, merge, extend) names what
    was asked for. Counting distinct approvers is the caller's job."""
    if isinstance(decision_or_requirement, Decision):
        requirement = decision_or_requirement.approval
        if requirement is None:
            return False, "this decision needs no approval"
    else:
        requirement = decision_or_requirement
    if approver == requester or approver in requirement.excluded:
        # Who asked for a rollback is not always who asked for the change.
        asked = _ASKED.get(action or "", "this change")
        return False, (
            f"{user_mention(approver)} asked for {asked} and cannot {verb} it; it needs "
            f"{requirement.describe()}"
        )
    member_of = frozenset(groups)
    if requirement.anyone or approver in requirement.users:
        return True, f"{user_mention(approver)} may {verb}"
    shared = sorted(member_of & set(requirement.groups))
    if shared:
        return (
            True,
            f"{user_mention(approver)} may {verb} as a member of {group_mention(shared[0])}",
        )
    return False, f"{user_mention(approver)} may not {verb} this: it needs {requirement.describe()}"


def _may_ever_approve(policy: Policy, user: str) -> bool | None:
    """Whether `permissions.approve` (or being an admin) can ever let `user`
    approve: True, False, or None when it cannot be known here (a Slack
    user's groups are Slack's to say). A channel restriction is not a
    never: they may approve in the channel it names."""
    allowed = policy.permission(Permission.APPROVE)
    cli = user.startswith(CLI_OPERATOR)
    if cli and not allowed.cli:
        return False  # authorize refuses it before it looks at admins
    if _listed(policy.admins, user, frozenset()) or _listed(allowed, user, frozenset()):
        return True
    if not cli and (allowed.groups or policy.admins.groups):
        return None  # they may be in a group that is allowed
    return False


def refused_approvers(
    policy: Policy, requirement: ApprovalRequirement
) -> tuple[tuple[str, ...], bool]:
    """The users the approvals rule names for `requirement` whom
    `permissions.approve` never lets approve (their approval is refused at
    approval time: the lint only warns of it), and whether the request can
    then never get its approvals: fewer people left who may than it needs.
    Only what can be known: a named group's members, or a user who may be in
    an allowed group, count as able (unknown is never reported as never)."""
    if requirement.anyone:
        return (), False
    refused: list[str] = []
    able = 0
    for user in dict.fromkeys(requirement.users):
        if user in requirement.excluded:
            continue
        if _may_ever_approve(policy, user) is False:
            refused.append(user)
        else:
            able += 1
    never = bool(refused) and not requirement.groups and able < requirement.required
    return tuple(refused), never


def unapprovable_outcome(policy: Policy, requirement: ApprovalRequirement) -> RuleOutcome | None:
    """A warning for the requester when approvers the policy names cannot
    approve (None when all can): a request they alone could approve waits
    for ever, so its requester is told at once, not left waiting."""
    refused, never = refused_approvers(policy, requirement)
    if not refused:
        return None
    who = ", ".join(user_mention(u) for u in refused)
    one = len(refused) == 1
    named = (
        f"{who} {'is' if one else 'are'} named to approve, but permissions.approve does not let "
        f"{'them' if one else 'any of them'} approve: {'their' if one else 'each'} approval "
        "would be refused"
    )
    message = (
        f"this can never be approved as the policy stands: {named}, and no one else may give "
        f"the {requirement.required} approval{'' if requirement.required == 1 else 's'} it needs"
        if never
        else named
    )
    return RuleOutcome(
        "approvals",
        OutcomeKind.FIRED,
        Effect.WARN,
        message,
        "ask an admin to add them to the policy's permissions.approve (or to name approvers "
        "who may); the request waits, and is approvable once the policy lets them",
        {"refused_approvers": Fact(refused, "policy")},
    )
