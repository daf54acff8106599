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
from policies.policy import CompiledOverride, CompiledRule, Policy
from policies.registry import PERMISSIONS_RULE, RULES
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


class PolicyError(YamlValidationError):
    """A policy file that cannot be used; `.problems` lists every finding."""


def default_policy_path() -> Path:
    return Path(__file__).with_name("default.yaml")


def load_policy(*paths: Path) -> Policy:
    """The shipped default, then each file deep-merged over it, in order."""
    docs = [_read(default_policy_path(), "default.yaml (shipped)")]
    docs += [_read(path, str(path)) for path in paths]
    return _build(docs)


def parse_policy(*texts: str, source: str = "<policy>") -> Policy:
    """Like `load_policy`, from YAML texts (tests, `policy explain --policy -`)."""
    docs = [_read(default_policy_path(), "default.yaml (shipped)")]
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
    into: dict[str, Any], overlay: Mapping[str, Any], path: YamlPath, doc: YamlDoc, o: _Origins
) -> None:
    for key, value in overlay.items():
        here = (*path, key)
        atomic = _ATOMIC_DEPTH.get(str(here[0])) == len(here)
        if value is None and key in into:
            continue  # an empty section (everything commented out) changes nothing
        if isinstance(value, Mapping) and isinstance(into.get(key), dict) and not atomic:
            _merge(into[key], value, here, doc, o)
        else:
            into[key] = _copy(value)
            o.claim(doc, here)


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
        if not isinstance(doc.data, Mapping):
            problems.append(doc.problem((), "a policy file must be a mapping (key: value lines)"))
            continue
        origins.by_path.setdefault((), doc)
        _merge(merged, doc.data, (), doc, origins)
    if problems:
        raise PolicyError(problems)
    try:
        parsed = PolicyDoc.model_validate(merged)
    except ValidationError as exc:
        raise PolicyError(_located(exc, origins, (), PolicyDoc)) from None
    rules, problems = _compile_rules(parsed, origins)
    problems += _exemption_problems(parsed, origins)
    if problems:
        raise PolicyError(sorted(problems, key=lambda p: (p.source, p.line or 0)))
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
    return Policy(
        rules=rules,
        admins=parsed.admins,
        permissions=parsed.permissions,
        windows=windows,
        exemptions=tuple(parsed.exemptions),
        sources=tuple(d.source for d in docs),
    )


def _located(
    exc: ValidationError, origins: _Origins, prefix: YamlPath, model: type[Any]
) -> list[ConfigProblem]:
    # validation_errors words each error; with no lines known it keeps
    # pydantic's order, so its problems pair up with exc.errors().
    worded = validation_errors(exc, YamlDoc(None, "policy", {}), model=model)
    return [
        origins.problem((*prefix, *error["loc"]), problem.message)
        for error, problem in zip(exc.errors(include_url=False), worded, strict=True)
    ]


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
                problems += _located(exc, origins, (*where, "params"), spec.params)
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
