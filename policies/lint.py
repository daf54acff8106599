"""What a valid policy does that its author probably did not mean, said as
warnings (`policy validate`) and as notes per rule (`policy explain`):

- a safety guardrail weakened below the shipped policy (disabled, a weaker
  effect, or a live exemption) by a deployment's file: allowed, but loud;
- a scope (a change window's, an override's, an exemption's VM pattern)
  that matches no VM of the inventory: a typo the policy would never show;
- a base param the deployment sets that a shipped override (kept, since
  the deployment did not replace that rule's overrides) overrides again
  for some VMs, so those VMs keep the shipped value.

Pure: the loaded policy, the shipped policy, the inventory as plain data
(`InventoryVM`, so `policies` imports nothing of `bot.inventory`), and the
parsed YAML documents (for FILE:LINE) in; typed findings out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from fnmatch import fnmatchcase
from typing import Any

from bot.domain import is_group_id, names_someone
from bot.yamlio import YamlDoc, YamlPath, format_path
from policies.model import Effect, Fact, Facts, OutcomeKind, Permission
from policies.policy import CompiledRule, Policy
from policies.rules.checkpoints import TRANSACTIONAL_ROLES
from policies.rules.replication import REPLICATING_ROLES
from policies.schema import Scope
from policies.windows import describe_scope

__all__ = [
    "GUARDRAILS",
    "Finding",
    "FindingKind",
    "InventoryVM",
    "Located",
    "RuleNote",
    "lint",
    "rule_notes",
]

# The rules that refuse what would do harm (README, "Guardrails"): what the
# README promises to refuse, and which VMs of the inventory each is about.
GUARDRAILS: Mapping[str, str] = {
    "domain_controller": "domain controllers",
    "guest_cluster": "guest cluster nodes and VMs on shared VHDX / VHD Set",
    "replicating_application": "SQL AG replicas, Exchange servers and DFS-R members",
    "unsupported_disks": "VMs with pass-through or virtual Fibre Channel disks",
    "checkpoint_type": "AD, SQL and Exchange servers",
    "hyperv_replica": "Hyper-V Replica VMs",
}

_DC = frozenset({"domain_controller", "read_only_domain_controller"})
# The roles each guardrail fires on: the rules' own definitions.
_REPLICATING = frozenset(REPLICATING_ROLES)
_TYPED = frozenset(TRANSACTIONAL_ROLES)
# How strict an effect is; a disabled rule is below all of them.
_RANK = {Effect.WARN: 1, Effect.SCHEDULE: 2, Effect.NEEDS_APPROVAL: 3, Effect.DENY: 4}
_DISABLED = 0
_SHOWN_VALUES = 8
# The answers a weakened guardrail may have changed.
_CHANGED = frozenset({OutcomeKind.FIRED, OutcomeKind.EXEMPT, OutcomeKind.DISABLED})


@dataclass(frozen=True)
class InventoryVM:
    """What a scope and a guardrail look at of one VM of the inventory."""

    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    host_group: str | None = None
    domain: str | None = None
    roles: tuple[str, ...] = ()
    shared_disk: bool = False
    passthrough: bool = False
    fibre_channel: bool = False
    hyperv_replica: bool = False

    def facts(self) -> Facts:
        source = "inventory"
        return Facts(
            {
                "vm_name": Fact(self.name, source),
                "tags": Fact(dict(self.tags), source),
                "host_group": Fact(self.host_group, source),
                "domain": Fact(self.domain, source),
                "roles": Fact(list(self.roles), source),
            }
        )

    def concerns(self, rule: str) -> bool:
        """Whether the inventory marks this VM as what guardrail `rule` is about."""
        roles = set(self.roles)
        return {
            "domain_controller": bool(roles & _DC),
            "guest_cluster": "cluster_node" in roles or self.shared_disk,
            "replicating_application": bool(roles & _REPLICATING),
            "unsupported_disks": self.passthrough or self.fibre_channel,
            "checkpoint_type": bool(roles & _TYPED),
            "hyperv_replica": self.hyperv_replica,
        }.get(rule, True)


class FindingKind(enum.StrEnum):
    GUARDRAIL_WEAKENED = "guardrail_weakened"
    SCOPE_MATCHES_NOTHING = "scope_matches_nothing"
    SHADOWED_PARAM = "shadowed_param"
    APPROVER_CANNOT_APPROVE = "approver_cannot_approve"
    NAMES_NO_ONE = "names_no_one"


@dataclass(frozen=True)
class Located:
    source: str
    line: int | None

    def __str__(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    path: str  # the setting, in the policy file's terms: rules.ttl.overrides[0]
    message: str
    where: Located | None = None
    rule: str | None = None
    vms: tuple[str, ...] = ()  # the inventory's VMs it is about
    shipped: str | None = None  # guardrails: the shipped effect
    now: str | None = None  # guardrails: what it became

    def __str__(self) -> str:
        at = f"{self.where}: " if self.where else ""
        if self.message.startswith(self.path):  # a sentence about the setting
            return f"{at}{self.message}"
        return f"{at}{self.path}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "path": self.path,
            "source": self.where.source if self.where else None,
            "line": self.where.line if self.where else None,
            "rule": self.rule,
            "message": self.message,
            "vms": list(self.vms),
            "shipped": self.shipped,
            "now": self.now,
        }


@dataclass(frozen=True)
class RuleNote:
    """For one VM and one rule (`policy explain`): the overrides that apply
    (index in the merged list, its scope) and, for a guardrail weaker than
    shipped for this VM, where that was said."""

    rule: str
    overrides: tuple[tuple[int, str], ...] = ()
    weakened: Located | None = None
    shipped: str | None = None
    now: str | None = None

    def override_text(self, line: str = "") -> str:
        """The "(override 1: env=prod)" after the rule's `line`, unless the line
        already names every scope (approvals, a disabled rule)."""
        if not self.overrides or all(s in line for _, s in self.overrides):
            return ""
        word = "override" if len(self.overrides) == 1 else "overrides"
        indexes = ", ".join(str(i) for i, _ in self.overrides)
        scopes = "; ".join(s for _, s in self.overrides)
        return f"({word} {indexes}: {scopes})"

    @property
    def weakened_text(self) -> str:
        if self.weakened is None:
            return ""
        return f"guardrail weakened by {self.weakened} (shipped: {self.shipped})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "overrides": [{"index": i, "scope": s} for i, s in self.overrides],
            "weakened": None
            if self.weakened is None
            else {
                "source": self.weakened.source,
                "line": self.weakened.line,
                "shipped": self.shipped,
                "now": self.now,
            },
        }


class _Locator:
    """FILE:LINE of a setting: the last document that has it (a later file
    wins, a list is replaced whole); `shipped` is the first document."""

    def __init__(self, shipped: YamlDoc | None, docs: Sequence[YamlDoc]) -> None:
        self.shipped = shipped
        self.docs = [d for d in (shipped, *docs) if d is not None]

    def owner(self, path: YamlPath) -> YamlDoc | None:
        for doc in reversed(self.docs):
            if path in doc.lines:
                return doc
        return None

    def where(self, path: YamlPath) -> Located | None:
        doc = self.owner(path)
        if doc is not None:
            return Located(doc.source, doc.lines[path])
        for end in range(len(path) - 1, 1, -1):
            doc = self.owner(path[:end])
            if doc is not None:
                return Located(doc.source, doc.lines[path[:end]])
        return None

    def shipped_only(self, path: YamlPath) -> bool:
        return self.shipped is not None and self.owner(path) is self.shipped

    def deployment_sets(self, path: YamlPath) -> YamlDoc | None:
        doc = self.owner(path)
        return None if doc is None or doc is self.shipped else doc


# --- a guardrail's verdict for one VM, and what said it ---------------------


@dataclass(frozen=True)
class _Strength:
    rank: int
    now: str
    cause: YamlPath  # the setting that made it so (its line's path)
    setting: YamlPath  # the setting as reported (an override, not its key)


def _strength(rule: CompiledRule, facts: Facts) -> _Strength:
    enabled, effect = rule.enabled, rule.effect
    at: YamlPath = ("rules", rule.id)
    enabled_at: YamlPath = (*at, "enabled")
    effect_at: YamlPath = (*at, "effect")
    enabled_set, effect_set = enabled_at, effect_at
    for i, override in enumerate(rule.overrides):
        if override.matcher.decide(facts) is not True:
            continue
        here: YamlPath = (*at, "overrides", i)
        if override.enabled is not None:
            enabled, enabled_at, enabled_set = override.enabled, (*here, "enabled"), here
        if override.effect is not None:
            effect, effect_at, effect_set = override.effect, (*here, "effect"), here
    if not enabled:
        return _Strength(_DISABLED, "disabled", enabled_at, enabled_set)
    return _Strength(_RANK[effect], f"effect {effect.value}", effect_at, effect_set)


def _weakening(
    policy: Policy, shipped: Policy, rule_id: str, vm: InventoryVM, today: date
) -> tuple[_Strength, _Strength] | None:
    """(shipped, now) when guardrail `rule_id` is weaker for `vm` than shipped."""
    facts = vm.facts()
    before = _strength(shipped.rules[rule_id], facts)
    after = _strength(policy.rules[rule_id], facts)
    if after.rank < before.rank:
        return before, after
    if before.rank == _DISABLED:
        return None
    for j, exemption in reversed(list(enumerate(policy.exemptions))):
        if (
            exemption.rule == rule_id
            and today < exemption.expires
            and fnmatchcase(vm.name.casefold(), exemption.vm.casefold())
        ):
            now = f"exempt until {exemption.expires.isoformat()}"
            return before, _Strength(after.rank, now, ("exemptions", j), ("exemptions", j))
    return None


def _shipped_word(rule: CompiledRule) -> str:
    return "disabled" if not rule.enabled else rule.effect.value


# --- the checks ---------------------------------------------------------------


def lint(
    policy: Policy,
    shipped: Policy,
    vms: Sequence[InventoryVM],
    *,
    today: date,
    docs: Sequence[YamlDoc] = (),
    shipped_doc: YamlDoc | None = None,
) -> list[Finding]:
    """Every warning about `policy` (merged over `shipped`) against the
    inventory `vms`; `docs` are the deployment's files as parsed (for
    FILE:LINE, and to tell what the deployment set from what ships)."""
    where = _Locator(shipped_doc, docs)
    findings = _weakened_guardrails(policy, shipped, vms, today, where)
    if vms:
        findings += _empty_scopes(policy, vms, where)
    findings += _shadowed_params(policy, where)
    findings += _approvers_without_permission(policy, where)
    findings += _names_no_one(policy, where)
    return findings


def _weakened_guardrails(
    policy: Policy, shipped: Policy, vms: Sequence[InventoryVM], today: date, where: _Locator
) -> list[Finding]:
    findings: list[Finding] = []
    for rule_id in GUARDRAILS:
        if rule_id not in policy.rules or rule_id not in shipped.rules:
            continue
        was = shipped.rules[rule_id]
        floor = _DISABLED if not was.enabled else _RANK[was.effect]
        affected: dict[YamlPath, list[str]] = {}
        for vm in vms:
            found = _weakening(policy, shipped, rule_id, vm, today)
            if found is not None and vm.concerns(rule_id):
                affected.setdefault(found[1].setting, []).append(vm.name)
        for setting, line_at, now, scope in _weakening_settings(policy, rule_id, floor, today):
            if where.shipped_only(line_at):
                continue
            names = tuple(affected.get(setting, ()))
            what = GUARDRAILS[rule_id]
            if names:
                hits = f"affects {', '.join(names)} ({what} in the inventory)"
            else:
                hits = f"affects none of the inventory's {what} now"
            findings.append(
                Finding(
                    FindingKind.GUARDRAIL_WEAKENED,
                    format_path(setting),
                    f"guardrail {rule_id} weakened: {now} (shipped: {_shipped_word(was)}) "
                    f"for {scope}; {hits}",
                    where.where(line_at),
                    rule_id,
                    names,
                    _shipped_word(was),
                    now.removeprefix("effect "),
                )
            )
    return findings


def _weakening_settings(
    policy: Policy, rule_id: str, floor: int, today: date
) -> Iterable[tuple[YamlPath, YamlPath, str, str]]:
    """(setting, path of its line, what it became, scope) for each setting
    of `rule_id` below the shipped strength `floor`."""
    rule = policy.rules[rule_id]
    at: YamlPath = ("rules", rule_id)
    if floor == _DISABLED:
        return
    if not rule.enabled:
        yield (*at, "enabled"), (*at, "enabled"), "disabled", "every VM"
    elif _RANK[rule.effect] < floor:
        yield (*at, "effect"), (*at, "effect"), f"effect {rule.effect.value}", "every VM"
    for i, override in enumerate(rule.overrides):
        here: YamlPath = (*at, "overrides", i)
        scope = describe_scope(override.scope)
        if override.enabled is False:
            yield here, (*here, "enabled"), "disabled", scope
        elif override.effect is not None and _RANK[override.effect] < floor:
            yield here, (*here, "effect"), f"effect {override.effect.value}", scope
    for j, exemption in enumerate(policy.exemptions):
        if exemption.rule == rule_id and today < exemption.expires:
            now = f"exempt until {exemption.expires.isoformat()}"
            scope = f"VMs named {exemption.vm}"
            yield ("exemptions", j), ("exemptions", j), now, scope


def _empty_scopes(policy: Policy, vms: Sequence[InventoryVM], where: _Locator) -> list[Finding]:
    facts = [vm.facts() for vm in vms]
    findings: list[Finding] = []

    def none_match(matcher: Any) -> bool:
        return not any(matcher.decide(f) is True for f in facts)

    for i, window in enumerate(policy.windows):
        if not window.scope.is_everything and none_match(window.matcher):
            path: YamlPath = ("windows", i)
            findings.append(
                Finding(
                    FindingKind.SCOPE_MATCHES_NOTHING,
                    format_path(path),
                    f"{format_path(path)} {window.name!r} scope {_flow_scope(window.scope)} "
                    f"matches no VM of the inventory ({_inventory_has(window.scope, vms)})",
                    where.where(path),
                )
            )
    for rule_id, rule in policy.rules.items():
        for i, override in enumerate(rule.overrides):
            path = ("rules", rule_id, "overrides", i)
            if where.shipped_only(path) or override.scope.is_everything:
                continue
            if none_match(override.matcher):
                findings.append(
                    Finding(
                        FindingKind.SCOPE_MATCHES_NOTHING,
                        format_path(path),
                        f"{format_path(path)} scope {_flow_scope(override.scope)} matches no VM "
                        f"of the inventory ({_inventory_has(override.scope, vms)})",
                        where.where(path),
                        rule_id,
                    )
                )
    for j, exemption in enumerate(policy.exemptions):
        pattern = exemption.vm.casefold()
        if not any(fnmatchcase(vm.name.casefold(), pattern) for vm in vms):
            path = ("exemptions", j)
            findings.append(
                Finding(
                    FindingKind.SCOPE_MATCHES_NOTHING,
                    format_path(path),
                    f"{format_path(path)} ({exemption.rule}) vm {exemption.vm} matches no VM "
                    "of the inventory",
                    where.where(path),
                    exemption.rule,
                )
            )
    return findings


def _shadowed_params(policy: Policy, where: _Locator) -> list[Finding]:
    findings: list[Finding] = []
    for rule_id, rule in policy.rules.items():
        for key in type(rule.params).model_fields:
            param_at: YamlPath = ("rules", rule_id, "params", key)
            if where.deployment_sets(param_at) is None:
                continue
            base = getattr(rule.params, key)
            for i, override in enumerate(rule.overrides):
                at: YamlPath = ("rules", rule_id, "overrides", i, "params", key)
                if key not in override.params or not where.shipped_only(at):
                    continue
                value = override.params[key]
                if value == base:
                    continue
                findings.append(
                    Finding(
                        FindingKind.SHADOWED_PARAM,
                        format_path(param_at),
                        f"{format_path(param_at)}: {_flow(base)} is overridden to "
                        f"{_flow(value)} for {describe_scope(override.scope)} by the shipped "
                        f"override ({where.where(at)}); set overrides too to change it",
                        where.where(param_at),
                        rule_id,
                    )
                )
    return findings


def _approvers_without_permission(policy: Policy, where: _Locator) -> list[Finding]:
    """Users the approvals rule names (base or an override) whom the
    `approve` permission does not let approve: their approval is refused,
    and a request only they could approve never is. Only where it can be
    known: the permission does not allow everyone, and either lists no
    group or the user is a CLI operator (`cli:NAME`), who is in no Slack
    group (a Slack user's groups are Slack's to say)."""
    allowed = policy.permission(Permission.APPROVE)
    rule = policy.rules.get("approvals")
    if "*" in allowed.users or rule is None:
        return []
    may = set(allowed.users) | set(policy.admins.users)
    named: list[tuple[YamlPath, Sequence[str]]] = [
        (("rules", "approvals", "params", "users"), getattr(rule.params, "users", ()))
    ]
    for i, override in enumerate(rule.overrides):
        at: YamlPath = ("rules", "approvals", "overrides", i, "params", "users")
        named.append((at, override.params.get("users", ())))
    findings: list[Finding] = []
    for path, users in named:
        refused = [
            u
            for u in users
            if u != "*" and u not in may and (not allowed.groups or u.startswith("cli:"))
        ]
        if not refused or where.shipped_only(path):
            continue
        who = ", ".join(refused)
        findings.append(
            Finding(
                FindingKind.APPROVER_CANNOT_APPROVE,
                format_path(path),
                f"{format_path(path)}: {who} {'is' if len(refused) == 1 else 'are'} named to "
                "approve, but permissions.approve does not let them approve: their approval "
                "would be refused; add them to permissions.approve",
                where.where(path),
                "approvals",
            )
        )
    return findings


def _principal_lists(policy: Policy) -> list[tuple[YamlPath, Sequence[str], Sequence[str]]]:
    """Every place the policy names people: (where, users, groups)."""
    found: list[tuple[YamlPath, Sequence[str], Sequence[str]]] = [
        (("admins",), policy.admins.users, policy.admins.groups)
    ]
    for name in Permission:
        allowed = policy.permission(name)
        found.append((("permissions", name.value), allowed.users, allowed.groups))
    rule = policy.rules.get("approvals")
    if rule is not None:
        found.append(
            (
                ("rules", "approvals", "params"),
                getattr(rule.params, "users", ()),
                getattr(rule.params, "groups", ()),
            )
        )
        for i, override in enumerate(rule.overrides):
            found.append(
                (
                    ("rules", "approvals", "overrides", i, "params"),
                    override.params.get("users", ()),
                    override.params.get("groups", ()),
                )
            )
    return found


def _names_no_one(policy: Policy, where: _Locator) -> list[Finding]:
    """A user that is neither a Slack user id, a CLI operator (`cli:NAME`)
    nor `*` (a name, `@alice`), or a group that is no Slack user-group id (a
    handle, `@hyperv-approvers`): it matches no principal, so whatever it was
    meant to allow or ask, nobody gets. (Channel names are refused outright
    by the loader; a user or group value is kept, as a deployment's tests
    may name principals their own way, and warned about.)"""
    findings: list[Finding] = []
    for base, users, groups in _principal_lists(policy):
        for key, values, ok, should in (
            ("users", users, names_someone, "a Slack user id (U0123ABCD) or cli:NAME"),
            ("groups", groups, is_group_id, "a Slack user-group id (S0123ABCD)"),
        ):
            at: YamlPath = (*base, key)
            wrong = [v for v in values if not ok(v)]
            if not wrong or where.shipped_only(at):
                continue
            findings.append(
                Finding(
                    FindingKind.NAMES_NO_ONE,
                    format_path(at),
                    f"{format_path(at)}: {', '.join(wrong)} "
                    f"{'matches' if len(wrong) == 1 else 'match'} no one: write {should}",
                    where.where(at),
                )
            )
    return findings


# --- for `policy explain` -----------------------------------------------------


def rule_notes(
    policy: Policy,
    shipped: Policy,
    vm: InventoryVM,
    *,
    today: date,
    docs: Sequence[YamlDoc] = (),
    shipped_doc: YamlDoc | None = None,
    outcomes: Mapping[str, OutcomeKind] | None = None,
) -> dict[str, RuleNote]:
    """Per rule of `policy`, for `vm`: the overrides that apply and whether
    (and by which FILE:LINE) a guardrail is weaker than shipped. Given the
    decision's `outcomes`, a guardrail is said to be weakened only where
    that changed its answer: it fired (with the weaker effect), was exempt
    or was disabled; not where it passed or had nothing to say."""
    where = _Locator(shipped_doc, docs)
    facts = vm.facts()
    notes: dict[str, RuleNote] = {}
    for rule_id, rule in policy.rules.items():
        applied = tuple(
            (i, o.matcher.description)
            for i, o in enumerate(rule.overrides)
            if o.matcher.decide(facts) is True
        )
        found = (
            _weakening(policy, shipped, rule_id, vm, today)
            if rule_id in GUARDRAILS and rule_id in shipped.rules
            else None
        )
        if found is not None and outcomes is not None and outcomes.get(rule_id) not in _CHANGED:
            found = None
        if found is None:
            notes[rule_id] = RuleNote(rule_id, applied)
            continue
        before, after = found
        notes[rule_id] = RuleNote(
            rule_id,
            applied,
            where.where(after.cause) or Located("policy", None),
            before.now.removeprefix("effect "),
            after.now.removeprefix("effect "),
        )
    return notes


# --- words ------------------------------------------------------------------


def _flow(value: Any) -> str:
    """A value as YAML's flow style writes it: {tags: {env: prod}}, [a, b]."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple | set | frozenset):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


def _flow_scope(scope: Scope) -> str:
    return _flow(scope.model_dump(exclude_defaults=True))


def _listed(values: Iterable[str]) -> str:
    found = sorted(set(values), key=str.casefold)
    if not found:
        return "none"
    shown = ", ".join(found[:_SHOWN_VALUES])
    return shown + (", …" if len(found) > _SHOWN_VALUES else "")


def _inventory_has(scope: Scope, vms: Sequence[InventoryVM]) -> str:
    """What the inventory has for each criterion of `scope`, to spot the typo."""
    said: list[str] = []
    for key in scope.tags:
        values = [vm.tags[key] for vm in vms if key in vm.tags]
        said.append(f"tags {key}: {_listed(values)}" if values else f"no VM has a tag {key!r}")
    if scope.names:
        said.append(f"{len(vms)} VMs, none named {' or '.join(scope.names)}")
    if scope.host_groups:
        said.append(f"host groups: {_listed(vm.host_group for vm in vms if vm.host_group)}")
    if scope.domains:
        said.append(f"domains: {_listed(vm.domain for vm in vms if vm.domain)}")
    if scope.roles:
        said.append(f"roles: {_listed(r for vm in vms for r in vm.roles)}")
    return "; ".join(said)
