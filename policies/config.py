"""Loading the policy: the shipped default, deployment files merged over it,
every problem reported as FILE:LINE: key: message.

The only module of `policies` that does I/O (reading files, loading time
zones). Errors::

    ValueError
    └── bot.yamlio.YamlValidationError
        └── PolicyError   structural (pydantic) and semantic problems: unknown
                          rule, effect or role, bad params, bad cron or time
                          zone, exemption for a rule that does not exist
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from bot.yamlio import (
    ConfigProblem,
    PathKey,
    YamlDoc,
    YamlPath,
    YamlValidationError,
    format_path,
    load_yaml,
    read_config_text,
    validation_errors,
)
from policies.model import Effect
from policies.params import ParamsConflict
from policies.policy import CompiledOverride, CompiledRule, Policy
from policies.registry import PERMISSIONS_RULE, RULES
from policies.rules.schedule import ApprovalsParams
from policies.schema import PolicyDoc, RuleConfig
from policies.windows import Window

__all__ = [
    "PolicyError",
    "default_policy_path",
    "load_policy",
    "parse_policy",
    "validate_policy_file",
]

# Replaced as a whole when a later file gives them: merging one permission
# key by key would keep the default's "*" next to the users a deployment
# lists, silently leaving the permission open.
_ATOMIC_DEPTH = {"permissions": 2}

# A key written with no value (YAML null: `rollback:` with its lines
# commented out) never means "keep what the earlier file says": for a
# permission that was the shipped "anyone". It is an error, saying what to
# write instead, for every value and list, and for the sections that say who
# may do what (`admins`, `permissions` and each permission). Only a section
# of rule settings (`rules:`, `rules.ttl:`, `rules.ttl.params:`) with every
# line commented out changes nothing, as an empty file does: what it keeps
# is the shipped guardrail, never a wider door.
_WHO = frozenset({"admins", "permissions"})
_EMPTY_PERMISSION = (
    "is empty: write `{name}: {{}}` for admins only, or list who may (users, groups, channels)"
)

# A window must open within this long of the policy being loaded; one that
# does not (Feb 30) would only ever answer "closed" and name no opening.
_OPENING_HORIZON_YEARS = 5

# The shipped default's name in every problem; a problem that only names it
# as where a value came from says "the shipped policy".
_SHIPPED = "default.yaml (shipped)"


class PolicyError(YamlValidationError):
    """A policy file that cannot be used; `.problems` lists every finding."""


def default_policy_path() -> Path:
    return Path(__file__).with_name("default.yaml")


def load_policy(*paths: Path) -> Policy:
    """The shipped default, then each file deep-merged over it, in order."""
    docs = [_read(default_policy_path(), _SHIPPED)]
    docs += [_read(path, str(path)) for path in paths]
    return _build(docs)


def parse_policy(*texts: str, source: str = "<policy>") -> Policy:
    """Like `load_policy`, from YAML texts (tests, `policy explain --policy -`)."""
    docs = [_read(default_policy_path(), _SHIPPED)]
    docs += [_parse(text, f"{source}#{i + 1}" if len(texts) > 1 else source) for i, text in
             enumerate(texts)]  # fmt: skip
    return _build(docs)


def validate_policy_file(path: Path) -> Policy:
    """Check a deployment's policy file (merged over the default); raise PolicyError."""
    return load_policy(path)


def _read(path: Path, source: str) -> YamlDoc:
    try:
        return load_yaml(read_config_text(path, source, what="policy"), source)
    except YamlValidationError as exc:
        raise PolicyError(exc.problems) from None


def _parse(text: str, source: str) -> YamlDoc:
    try:
        return load_yaml(text, source)
    except YamlValidationError as exc:
        raise PolicyError(exc.problems) from None


class _Origins:
    """Which file each merged node came from, to name FILE:LINE for a path."""

    def __init__(self) -> None:
        self.by_path: dict[YamlPath, YamlDoc] = {}
        # Each file's place in the merge order: a later file wins.
        self.rank: dict[str, int] = {}

    def claim(self, doc: YamlDoc, prefix: YamlPath) -> None:
        n = len(prefix)
        for path in [p for p in self.by_path if p[:n] == prefix]:
            del self.by_path[path]
        for path in doc.lines:
            if path[:n] == prefix:
                self.by_path[path] = doc

    def problem(self, path: Sequence[PathKey], message: str) -> ConfigProblem:
        key = tuple(path)
        for end in range(len(key), -1, -1):
            doc = self.by_path.get(key[:end])
            if doc is not None:
                return ConfigProblem(doc.source, doc.line_of(key), format_path(key), message)
        return ConfigProblem("policy", None, format_path(key), message)


def _merge(
    into: dict[str, Any],
    overlay: Mapping[str, Any],
    path: YamlPath,
    doc: YamlDoc,
    o: _Origins,
    problems: list[ConfigProblem],
) -> None:
    for key, value in overlay.items():
        here = (*path, key)
        atomic = _ATOMIC_DEPTH.get(str(here[0])) == len(here)
        if value is None:
            if isinstance(into.get(key), dict) and not atomic and here[0] not in _WHO:
                continue  # an empty section of rule settings changes nothing
            problems.append(doc.problem(here, _empty(here, into, key, atomic, o)))
            continue
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and not atomic:
            _merge(into[key], value, here, doc, o, problems)
        else:
            into[key] = _copy(value)
            o.claim(doc, here)


def _empty(here: YamlPath, into: Mapping[str, Any], key: str, atomic: bool, o: _Origins) -> str:
    """What to write instead of a key with no value (see `_EMPTY_PERMISSION`)."""
    if atomic and here[0] == "permissions":
        return _EMPTY_PERMISSION.format(name=key)
    if key not in into:
        return "is empty: give a value, or remove the line"
    earlier = o.problem(here, "").source
    keep = f"or remove the line to keep the one in {earlier}"
    if here == ("permissions",):
        return (
            "is empty: name the permissions to change under it "
            f"(`rollback: {{}}`: admins only), {keep}"
        )
    if isinstance(into[key], dict):
        return f"is empty: write the keys to change under it, {keep}"
    if isinstance(into[key], list):
        return f"is empty: write [] for none, {keep}"
    return f"is empty: give a value, {keep}"


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _build(docs: list[YamlDoc]) -> Policy:
    origins = _Origins()
    merged: dict[str, Any] = {}
    problems: list[ConfigProblem] = []
    for doc in docs:
        if doc.data is None:
            continue
        origins.rank[doc.source] = len(origins.rank)
        if not isinstance(doc.data, Mapping):
            problems.append(doc.problem((), "a policy file must be a mapping (key: value lines)"))
            continue
        origins.by_path.setdefault((), doc)
        _merge(merged, doc.data, (), doc, origins, problems)
    if problems:
        raise PolicyError(problems)
    try:
        parsed = PolicyDoc.model_validate(merged)
    except ValidationError as exc:
        raise PolicyError(_located(exc, origins, (), PolicyDoc)) from None
    rules, problems = _compile_rules(parsed, origins)
    problems += _exemption_problems(parsed, origins)
    problems += _approver_problems(parsed, origins)
    windows = tuple(
        Window(
            w.name,
            w.cron,
            w.duration,
            ZoneInfo(w.timezone),
            w.scope,
            rrule=w.rrule,
            channel=w.channel,
            opening_notice=w.notices.opening,
            closing_notice=w.notices.closing,
            notices_always=w.notices.always,
        )
        for w in parsed.windows
    )
    problems += _window_problems(windows, origins)
    problems += _window_name_problems([w.name for w in windows], origins)
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.source, p.line or 0)))
    return Policy(
        rules=rules,
        admins=parsed.admins,
        permissions=parsed.permissions,
        windows=windows,
        exemptions=tuple(parsed.exemptions),
        sources=tuple(d.source for d in docs),
    )


def _located(
    exc: ValidationError,
    origins: _Origins,
    prefix: YamlPath,
    model: type[Any],
    inherited: Sequence[YamlPath] = (),
) -> list[ConfigProblem]:
    """Each error at its key. `inherited`: where the keys not under `prefix`
    came from (an override's params are validated merged over the base's)."""
    # validation_errors words each error; with no lines known it keeps
    # pydantic's order, so its problems pair up with exc.errors().
    worded = validation_errors(exc, YamlDoc(None, "policy", {}), model=model)
    located = []
    for error, problem in zip(exc.errors(include_url=False), worded, strict=True):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, ParamsConflict):
            located.append(_conflict_problem(cause, origins, (prefix, *inherited)))
        else:
            located.append(origins.problem((*prefix, *error["loc"]), problem.message))
    return located


def _conflict_problem(
    conflict: ParamsConflict, origins: _Origins, places: Sequence[YamlPath]
) -> ConfigProblem:
    """Point at the conflicting key the user set last, saying where the
    other one came from: the params section as a whole may belong to the
    shipped file although the user wrote only one of its keys."""
    found = {key: _set_at(origins, places, key) for key in conflict.keys}
    blamed = max(conflict.keys, key=lambda k: _precedence(origins, places, *found[k]))
    (other,) = [k for k in conflict.keys if k != blamed]
    path, doc = found[blamed]
    other_path, other_doc = found[other]
    origin = _origin(doc, path, other_doc, other_path)
    if origin is None:
        return origins.problem((*places[0], conflict.together), conflict.together_text)
    return origins.problem(path, conflict.blame[blamed].replace("{origin}", origin))


def _set_at(
    origins: _Origins, places: Sequence[YamlPath], key: str
) -> tuple[YamlPath, YamlDoc | None]:
    """Where `key` was last set: the first of `places` (most specific
    first) whose file has it; no file at all for a model's own default."""
    for place in places:
        doc = origins.by_path.get((*place, key))
        if doc is not None:
            return (*place, key), doc
    return (*places[-1], key), None


def _precedence(
    origins: _Origins, places: Sequence[YamlPath], path: YamlPath, doc: YamlDoc | None
) -> tuple[int, int]:
    """Later files first, then the more specific place (an override over
    its base) within one file."""
    rank = origins.rank.get(doc.source, -1) if doc is not None else -1
    specific = next((-i for i, place in enumerate(places) if path[: len(place)] == place), 0)
    return rank, specific


def _origin(
    doc: YamlDoc | None, path: YamlPath, other_doc: YamlDoc | None, other_path: YamlPath
) -> str | None:
    """Where the other key's value came from, in words; None when both were
    set in the same place (then the conflict is that place's own)."""
    if other_doc is None:
        return "the rule's built-in default"
    if other_doc.source == _SHIPPED and (doc is None or doc.source != _SHIPPED):
        return "the shipped policy"
    if doc is None or other_doc.source != doc.source:
        return other_doc.source
    if other_path[:-1] != path[:-1]:
        return format_path(other_path[:-1])
    return None


def _compile_rules(
    parsed: PolicyDoc, origins: _Origins
) -> tuple[dict[str, CompiledRule], list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    for rule_id in parsed.rules:
        if rule_id not in RULES:
            known = ", ".join(RULES)
            hint = (
                " (permissions are set under `permissions:`)" if rule_id == PERMISSIONS_RULE else ""
            )
            problems.append(
                origins.problem(
                    ("rules", rule_id), f"unknown rule {rule_id!r}{hint}; known rules: {known}"
                )
            )
    compiled: dict[str, CompiledRule] = {}
    for rule_id, spec in RULES.items():
        config = parsed.rules.get(rule_id, RuleConfig())
        at: YamlPath = ("rules", rule_id)
        effect = config.effect or spec.default_effect
        problems += _effect_problems(spec.effects, config.effect, (*at, "effect"), origins)
        try:
            base = spec.params.model_validate(config.params)
        except ValidationError as exc:
            problems += _located(exc, origins, (*at, "params"), spec.params)
            continue
        overrides: list[CompiledOverride] = []
        for i, override in enumerate(config.overrides):
            where: YamlPath = (*at, "overrides", i)
            problems += _effect_problems(spec.effects, override.effect, (*where, "effect"), origins)
            try:
                # Validated merged with the base so cross-field checks see both.
                full = spec.params.model_validate({**config.params, **override.params})
            except ValidationError as exc:
                problems += _located(
                    exc, origins, (*where, "params"), spec.params, inherited=[(*at, "params")]
                )
                continue
            values = {k: getattr(full, k) for k in override.params}
            overrides.append(
                CompiledOverride(override.scope, override.enabled, override.effect, values)
            )
        compiled[rule_id] = CompiledRule(rule_id, config.enabled, effect, base, tuple(overrides))
    return compiled, problems


def _effect_problems(
    allowed: frozenset[Effect], effect: Effect | None, path: YamlPath, origins: _Origins
) -> list[ConfigProblem]:
    if effect is None or effect in allowed:
        return []
    choices = ", ".join(sorted(e.value for e in allowed))
    return [
        origins.problem(
            path, f"effect {effect.value!r} is not possible here (expected one of: {choices})"
        )
    ]


def _exemption_problems(parsed: PolicyDoc, origins: _Origins) -> list[ConfigProblem]:
    problems = []
    for i, exemption in enumerate(parsed.exemptions):
        if exemption.rule == PERMISSIONS_RULE:
            problems.append(
                origins.problem(
                    ("exemptions", i, "rule"),
                    "permissions cannot be exempted; change `permissions:` instead",
                )
            )
        elif exemption.rule not in RULES:
            problems.append(
                origins.problem(
                    ("exemptions", i, "rule"),
                    f"exemption for unknown rule {exemption.rule!r}; "
                    f"known rules: {', '.join(RULES)}",
                )
            )
    return problems


def _window_problems(windows: Sequence[Window], origins: _Origins) -> list[ConfigProblem]:
    """A window that never opens (a cron or RRULE naming Feb 30) is refused
    here, not met by every decision for a VM in its scope."""
    now = datetime.now(UTC)
    horizon = now + timedelta(days=round(365.25 * _OPENING_HORIZON_YEARS))
    problems = []
    for i, window in enumerate(windows):
        first = window.first_opening(now)
        if first is None or first > horizon:
            key = "cron" if window.cron is not None else "rrule"
            problems.append(
                origins.problem(
                    ("windows", i, key),
                    f"window {window.name!r} never opens: {_schedule(window)} has no date in "
                    f"the next {_OPENING_HORIZON_YEARS} years",
                )
            )
    return problems


def _repeated(names: Sequence[str]) -> dict[str, list[int]]:
    """Each name given more than once, with the indexes it is given at."""
    at: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        at.setdefault(name, []).append(i)
    return {name: places for name, places in at.items() if len(places) > 1}


def _window_name_problems(names: Sequence[str], origins: _Origins) -> list[ConfigProblem]:
    """A window's name is its identity: the notices' once-per-opening claim
    (`DueNotice.slot`), `/checkpoint windows` and the decisions' messages
    all go by it, so a second window of the same name would be silenced or
    confused with the first. Said at its second use, naming every line."""
    problems = []
    for name, indexes in _repeated(names).items():
        paths = [("windows", i, "name") for i in indexes]
        lines = [origins.problem(path, "").line for path in paths]
        if None in lines:  # a text without lines: name the entries instead
            places, label = [format_path(path) for path in paths], ""
        else:
            places, label = [str(line) for line in lines], "lines "
        said = f"{label}{', '.join(places[:-1])} and {places[-1]}"
        times = "twice" if len(indexes) == 2 else f"{len(indexes)} times"
        problems.append(
            origins.problem(
                paths[1],
                f"window name {name!r} is used {times} ({said}): names must be unique",
            )
        )
    return problems


def _schedule(window: Window) -> str:
    return f"cron {window.cron!r}" if window.cron is not None else f"RRULE {window.rrule!r}"


# Who may approve when the approvals rule names no one (policies.access).
_APPROVE: YamlPath = ("permissions", "approve")


def _approver_problems(parsed: PolicyDoc, origins: _Origins) -> list[ConfigProblem]:
    """An approvals rule asking more approvals than there can be people to
    give them: known when every approver is named (no group, no "*").
    Checked for the rule's params and for each override merged over them."""
    at: YamlPath = ("rules", "approvals")
    config = parsed.rules.get("approvals", RuleConfig())
    checks = [((*at, "params"), config.params, config.params)]
    checks += [
        ((*at, "overrides", i, "params"), {**config.params, **override.params}, override.params)
        for i, override in enumerate(config.overrides)
    ]
    problems = []
    for where, values, given in checks:
        try:
            params = ApprovalsParams.model_validate(values)
        except ValidationError:
            continue  # said by _compile_rules
        message = _too_few_approvers(parsed, params)
        if message is None:
            continue
        key = next((k for k in ("count", "users", "groups") if k in given), "count")
        rule = origins.problem((*where, key), message)
        granted = origins.problem(_APPROVE, "")
        if params.users or params.groups or granted.source == rule.source:
            problems.append(rule)
            continue
        # The rule asks whoever holds `approve`, and a later file's `approve:`
        # (replaced whole, so `{cli: false}` alone names no one) is what left
        # too few: said at that line, where the fix is, not at the rule's.
        if any((p.source, p.line) == (granted.source, granted.line) for p in problems):
            continue  # one line for the permission, whichever overrides it leaves short
        problems.append(
            origins.problem(
                _APPROVE,
                f"names too few approvers for the approvals rule at {rule.source}:"
                f"{rule.line} ({message.split(':')[0]}): a permission is replaced whole, "
                "so this one grants only what it lists; list who may approve "
                '(users: ["*"] keeps everyone), or add a group',
            )
        )
    return problems


def _too_few_approvers(parsed: PolicyDoc, params: ApprovalsParams) -> str | None:
    if params.count == 0:
        return None
    users, groups = set(params.users), set(params.groups)
    if not users and not groups:  # whoever holds `approve` (policies.access.approvers_for)
        users, groups = (
            set(parsed.permissions.approve.users),
            set(parsed.permissions.approve.groups),
        )
    users |= set(parsed.admins.users)
    groups |= set(parsed.admins.groups)
    if groups or "*" in users or params.count <= len(users):
        return None
    named = f"only {len(users)} approver{'s are' if len(users) != 1 else ' is'} named"
    if not users:
        named = "no approver is named"
    lower = f"lower count to {len(users)}" if users else "lower count to 0"
    return (
        f"count {params.count} but {named} and no group: name more users (admins count too), "
        f"add a group, or {lower}"
    )
