"""YAML config files with line numbers, and validation errors a human can act on.

Generic on purpose: the inventory and the bot's config file both load through it.

Errors::

    ValueError
    └── YamlValidationError   the file's content is wrong; `.problems` lists every finding
        └── YamlError         the file cannot be read, is not well-formed YAML,
                              or repeats a key in one mapping

Every problem is a `ConfigProblem` that prints as one line, `FILE:LINE: FIELD: MESSAGE`
(LINE and FIELD are left out when unknown), so `except YamlValidationError` catches all
of them and `str(exc).splitlines()[0]` is a complete one-line error.
"""

from __future__ import annotations

import collections.abc
import re
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeAlias, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

__all__ = [
    "ConfigProblem",
    "PathKey",
    "YamlDoc",
    "YamlError",
    "YamlPath",
    "YamlValidationError",
    "format_path",
    "load_model",
    "load_yaml",
    "read_config_text",
    "validation_errors",
]

PathKey: TypeAlias = str | int
YamlPath: TypeAlias = tuple[PathKey, ...]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_QUOTED = re.compile(r"'([^']*)'")
_LONGEST_SHOWN_VALUE = 40

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file, at a line and a field when known."""

    source: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class YamlValidationError(ValueError):
    """A config file whose content is wrong. One problem per line in `str()`."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems) or "invalid configuration"


class YamlError(YamlValidationError):
    """A config file that cannot be read or parsed as YAML."""


@dataclass(frozen=True)
class YamlDoc:
    """Parsed YAML (`data`, plain Python) plus where each node came from."""

    data: Any = field(repr=False)  # can be huge: aliases share, repr would expand
    source: str
    lines: Mapping[YamlPath, int] = field(default_factory=dict, repr=False)

    def line_of(self, path: Sequence[PathKey]) -> int | None:
        """1-based line of the node at `path`, else of its nearest existing ancestor."""
        key = tuple(path)
        while True:
            line = self.lines.get(key)
            if line is not None or not key:
                return line
            key = key[:-1]

    def problem(self, path: Sequence[PathKey], message: str) -> ConfigProblem:
        return ConfigProblem(self.source, self.line_of(path), format_path(path), message)


def format_path(path: Sequence[PathKey]) -> str:
    """`("vms", 3, "host")` -> `vms[3].host`; awkward keys are quoted: `volumes['D:\\']`."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{str(part)!r}]"
    return out


def read_config_text(path: Path, source: str | None = None, *, what: str = "") -> str:
    """The file's text, or a YamlError that says why it cannot be read;
    `what` names the kind of file ("inventory"), so that a path set in
    the config is recognisable in the message."""
    name = source or str(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        reason = f"is not UTF-8 text (byte {exc.start})"
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror or exc}"
    kind = f"{what} file" if what else "file"
    raise YamlError([ConfigProblem(name, None, "", f"the {kind} {reason}")])


# libyaml's parser when PyYAML was built with it (`CSafeLoader`): the same
# SafeLoader semantics, since the resolver and the constructor stay PyYAML's
# own Python classes, and a few times faster: the demo inventory composes in
# 4 ms instead of 18 (bench/cli_start.py). PyYAML's documentation warns of
# "subtle (but not really significant) differences" between the two parsers
# (https://pyyaml.org/wiki/PyYAMLDocumentation, "Installation"), so libyaml
# only ever decides a document that parses: anything it rejects is parsed
# again by the pure-Python loader, whose words every error keeps.
_FAST_LOADER: type[yaml.SafeLoader] | None = getattr(yaml, "CSafeLoader", None)


def load_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document with SafeLoader semantics, remembering node lines.

    Repeated keys in one mapping are an error: PyYAML would silently keep the last.
    """
    if _FAST_LOADER is not None:
        try:
            return _compose(_FAST_LOADER, text, source)
        except (YamlError, RecursionError):
            pass  # said by the pure-Python loader below, in its words
    return _compose(yaml.SafeLoader, text, source)


def _compose(loader_class: type[yaml.SafeLoader], text: str, source: str) -> YamlDoc:
    loader = loader_class(text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDoc(None, source, {})
        lines: dict[YamlPath, int] = {(): node.start_mark.line + 1}
        duplicates: list[ConfigProblem] = []
        _index(loader, node, (), lines, duplicates, source, set())
        if duplicates:
            raise YamlError(duplicates)
        data = loader.construct_document(node)
    except YamlError:
        raise
    except yaml.MarkedYAMLError as exc:
        raise YamlError([_parse_problem(exc, source)]) from None
    except _CONSTRUCTOR_FAILURES as exc:
        # Well-formed YAML whose scalar PyYAML cannot make into a value: a
        # date that does not exist (`2026-02-30`, `2026-13-01`: a ValueError
        # from `datetime.date`), an explicit tag on the wrong text (`!!int x`).
        if node is None:
            raise
        raise YamlError([_unconstructable(loader, node, exc, source)]) from None
    except yaml.YAMLError as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise YamlError(
            [ConfigProblem(source, None, "", f"could not parse YAML: {first_line}")]
        ) from None
    except RecursionError:
        raise YamlError([ConfigProblem(source, None, "", "YAML is nested too deeply")]) from None
    finally:
        loader.dispose()
    return YamlDoc(data, source, lines)


_CONSTRUCTOR_FAILURES = (ValueError, TypeError, AttributeError, OverflowError)
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


def _unconstructable(
    loader: yaml.SafeLoader, root: yaml.Node, exc: Exception, source: str
) -> ConfigProblem:
    """The first scalar under `root` that its constructor refuses, located."""
    for path, node in _scalars(root, (), set()):
        construct = loader.yaml_constructors.get(node.tag)
        if construct is None:
            continue
        try:
            construct(loader, node)
        except _CONSTRUCTOR_FAILURES as error:
            line = node.start_mark.line + 1
            if node.tag == _TIMESTAMP_TAG:
                text = str(node.value).strip()
                parts = loader.timestamp_regexp.match(text)
                kind = "date and time" if parts and parts.group("hour") else "date"
                return ConfigProblem(source, line, format_path(path),
                                     f"{text} is not a {kind} ({error})")  # fmt: skip
            # Not echoed: this is where a pasted secret could sit.
            kind = node.tag.rsplit(":", 1)[-1]
            return ConfigProblem(source, line, format_path(path), f"is not a valid !!{kind}")
    return ConfigProblem(source, None, "", f"could not read a value: {type(exc).__name__}")


def _scalars(
    node: yaml.Node, path: YamlPath, seen: set[int]
) -> Iterable[tuple[YamlPath, yaml.ScalarNode]]:
    """Every scalar node in document order, with the path of its value (a
    key's own path is its mapping's); aliased nodes once, as `_index`."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        yield path, node
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            yield from _scalars(key_node, path, seen)
            child = (*path, key) if isinstance(key, str) and key != "<<" else path
            yield from _scalars(value_node, child, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _scalars(item, (*path, i), seen)


def _parse_problem(exc: yaml.MarkedYAMLError, source: str) -> ConfigProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    what = exc.problem or exc.context or "malformed YAML"
    if exc.problem and exc.context:
        context_mark = exc.context_mark
        on = f" on line {context_mark.line + 1}" if context_mark is not None else ""
        what = f"{exc.problem} ({exc.context}{on})"
    return ConfigProblem(source, line, "", f"could not parse YAML: {what}")


def _index(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    path: YamlPath,
    lines: dict[YamlPath, int],
    duplicates: list[ConfigProblem],
    source: str,
    seen: set[int],
) -> None:
    # An aliased node is indexed once, under its anchor's path: walking every alias
    # would make a "billion laughs" document exponential, and lines under an alias
    # fall back to the alias's own key line anyway.
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            # Merge keys (`<<: *defaults`) may legitimately repeat and be overridden.
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = loader.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in first_seen:
                where = f" in {format_path(path)}" if path else ""
                duplicates.append(
                    ConfigProblem(
                        source,
                        line,
                        "",
                        f"duplicate key {key!r}{where} (first defined on line {first_seen[key]})",
                    )
                )
                continue
            first_seen[key] = line
            child = (*path, key)
            lines[child] = line
            _index(loader, value_node, child, lines, duplicates, source, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*path, i)
            lines[child] = item.start_mark.line + 1
            _index(loader, item, child, lines, duplicates, source, seen)


def validation_errors(
    exc: ValidationError, doc: YamlDoc, *, model: type[BaseModel] | None = None
) -> list[ConfigProblem]:
    """Translate pydantic's errors into located, human problems, in file order.

    Pass `model` (the class that was validated) so an unknown field can list the
    fields that would have been accepted.
    """
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        problems.append(
            ConfigProblem(doc.source, doc.line_of(loc), format_path(loc), _humanize(error, model))
        )
    return sorted(problems, key=lambda p: p.line or 0)


def load_model(
    path_or_text: Path | str,
    model_cls: type[M],
    source: str | None = None,
    *,
    context: dict[str, Any] | None = None,
) -> M:
    """Load YAML (a `Path` is read, a `str` is the YAML itself) and validate it."""
    if isinstance(path_or_text, Path):
        name = source or str(path_or_text)
        text = read_config_text(path_or_text, name)
    else:
        name = source or "<string>"
        text = path_or_text
    doc = load_yaml(text, name)
    try:
        return model_cls.model_validate(doc.data, context=context)
    except ValidationError as exc:
        # `from None`: pydantic's own rendering echoes input values, which could
        # be a secret someone pasted into the file; our problems never do.
        raise YamlValidationError(validation_errors(exc, doc, model=model_cls)) from None


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "text",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping (key: value lines)",
    "model_type": "a mapping (key: value lines)",
    "model_attributes_type": "a mapping (key: value lines)",
    "path_type": "a file path",
    "uuid_type": "a GUID",
    "uuid_parsing": "a GUID",
}
_BOUNDS = {
    "greater_than": ("gt", "must be greater than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _humanize(error: ErrorDetails, model: type[BaseModel] | None) -> str:
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    value = error.get("input")
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        # The value is not echoed: an unknown key is a likely place for a pasted secret.
        key, allowed = error["loc"][-1], _allowed_fields(model, tuple(error["loc"])[:-1])
        listed = f" (expected one of: {', '.join(allowed)})" if allowed else ""
        return f"unknown field {str(key)!r}{listed}"
    if kind == "value_error":
        return str(ctx.get("error") or error["msg"].removeprefix("Value error, "))
    got = f", got {_describe(value)}"
    if kind == "string_type" and isinstance(value, bool | int | float):
        return f"expected text{got} (put it in quotes to keep it as text)"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}{got}"
    if kind in ("enum", "literal_error"):
        choices = _QUOTED.findall(str(ctx.get("expected", ""))) or [str(ctx.get("expected"))]
        return f"expected one of: {', '.join(choices)}{got}"
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        return f"{text} {ctx.get(key)}{got}"
    if kind == "string_too_short":
        least = ctx.get("min_length", 1)
        return "must not be empty" if least == 1 else f"must be at least {least} characters long"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_short":
        return f"needs at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} item(s)"
    if kind == "string_pattern_mismatch":
        return f"does not match the pattern {ctx.get('pattern')}{got}"
    message = error["msg"]
    if message.startswith("Input should be "):
        return f"expected {message.removeprefix('Input should be ')}{got}"
    return message


def _describe(value: object) -> str:
    """A value as the YAML author wrote it, short enough for one line."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if len(value) > _LONGEST_SHOWN_VALUE:
            value = value[: _LONGEST_SHOWN_VALUE - 3] + "..."
        return repr(value)
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _allowed_fields(model: type[BaseModel] | None, loc: YamlPath) -> list[str] | None:
    target = _type_at(model, loc) if model is not None else None
    if not (isinstance(target, type) and issubclass(target, BaseModel)):
        return None
    # Excluded fields are traps (e.g. a literal `password`), not something to advertise.
    return [f.alias or name for name, f in target.model_fields.items() if not f.exclude]


def _type_at(tp: Any, loc: YamlPath) -> Any:
    """The declared type found by following `loc` through models, lists and dicts."""
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = {f.alias or name: f for name, f in tp.model_fields.items()}
            found = fields.get(str(part)) or tp.model_fields.get(str(part))
            if found is None:
                return None
            tp = found.annotation
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (list, tuple, set, frozenset, collections.abc.Sequence) and args:
            tp = args[0]
        elif origin in (dict, collections.abc.Mapping) and len(args) == 2:
            tp = args[1]
        else:
            return None
    return _unwrap(tp)


def _unwrap(tp: Any) -> Any:
    """Strip `Annotated[...]` and `X | None` down to X."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp
