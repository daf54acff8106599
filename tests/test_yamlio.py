"""bot.yamlio: line numbers, duplicate keys, parse errors and friendly validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from bot import yamlio
from bot.yamlio import (
    ConfigProblem,
    YamlError,
    YamlValidationError,
    format_path,
    load_model,
    load_yaml,
)


class Port(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: int = Field(ge=1, le=65535)
    enabled: bool = True


class Server(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    address: str
    port: Port
    labels: dict[str, str] = Field(default_factory=dict)


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")
    servers: list[Server]
    hosts: dict[str, Port] = Field(default_factory=dict)


GOOD = """\
servers:
  - name: a
    address: a.example
    port:
      number: 80
  - name: b
    address: b.example
    port: {number: 443}
hosts:
  HV01:
    number: 5986
"""


def test_data_follows_safe_loader() -> None:
    doc = load_yaml(GOOD, "cfg.yaml")
    assert doc.data["servers"][1] == {"name": "b", "address": "b.example", "port": {"number": 443}}
    assert doc.data["hosts"]["HV01"]["number"] == 5986


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ((), 1),
        (("servers",), 1),
        (("servers", 0), 2),
        (("servers", 0, "port"), 4),
        (("servers", 0, "port", "number"), 5),
        (("servers", 1, "address"), 7),
        (("servers", 1, "port", "number"), 8),
        (("hosts", "HV01", "number"), 11),
        # Missing nodes report their nearest ancestor.
        (("servers", 1, "port", "missing"), 8),
        (("servers", 7, "name"), 1),
        (("nope",), 1),
    ],
)
def test_line_of(path: tuple[str | int, ...], line: int) -> None:
    assert load_yaml(GOOD, "cfg.yaml").line_of(path) == line


def test_empty_document_is_none() -> None:
    doc = load_yaml("# nothing here\n", "cfg.yaml")
    assert doc.data is None
    assert doc.line_of(("a",)) is None


def test_malformed_yaml_is_one_line_with_file_and_line() -> None:
    text = "a: 1\nb: 2\nc: d: e\n"
    with pytest.raises(YamlError) as caught:
        load_yaml(text, "inventory.yaml")
    assert str(caught.value) == (
        "inventory.yaml:3: could not parse YAML: mapping values are not allowed here"
    )


def test_unclosed_flow_names_its_context() -> None:
    with pytest.raises(YamlError) as caught:
        load_yaml("a: [1, 2\nb: 3\n", "x.yaml")
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("x.yaml:")
    assert "could not parse YAML" in str(caught.value)


def test_duplicate_keys_are_errors() -> None:
    text = "servers:\n  - name: a\n    address: x\n    name: b\nservers: []\n"
    with pytest.raises(YamlError) as caught:
        load_yaml(text, "cfg.yaml")
    assert [str(p) for p in caught.value.problems] == [
        "cfg.yaml:4: duplicate key 'name' in servers[0] (first defined on line 2)",
        "cfg.yaml:5: duplicate key 'servers' (first defined on line 1)",
    ]


def test_merge_keys_may_be_overridden() -> None:
    text = "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n"
    assert load_yaml(text, "cfg.yaml").data["other"] == {"x": 3, "y": 2}


def test_unsafe_tags_are_refused() -> None:
    with pytest.raises(YamlError, match="could not parse YAML"):
        load_yaml("a: !!python/object/apply:os.system ['true']\n", "cfg.yaml")


def test_multiple_documents_are_refused() -> None:
    with pytest.raises(YamlError, match=r"cfg.yaml:\d+: could not parse YAML"):
        load_yaml("a: 1\n---\nb: 2\n", "cfg.yaml")


def test_alias_bomb_is_cheap() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    doc = load_yaml("\n".join(lines) + "\n", "bomb.yaml")
    assert doc.line_of(("a8",)) == 9
    # Under an alias, lines are those of the anchored node.
    assert doc.line_of(("a8", 3, 2)) == 8
    assert "bomb.yaml" in repr(doc)


def test_config_problem_format() -> None:
    assert str(ConfigProblem("f.yaml", 3, "vms[1].host", "bad")) == "f.yaml:3: vms[1].host: bad"
    assert str(ConfigProblem("f.yaml", None, "", "bad")) == "f.yaml: bad"
    assert str(ConfigProblem("f.yaml", 2, "", "bad")) == "f.yaml:2: bad"


def test_format_path() -> None:
    assert format_path(("vms", 3, "host")) == "vms[3].host"
    assert format_path(("hosts", "HV01", "port")) == "hosts.HV01.port"
    assert format_path(("volumes", "D:\\")) == "volumes['D:\\\\']"
    assert format_path(()) == ""


def _problems(text: str) -> list[str]:
    with pytest.raises(YamlValidationError) as caught:
        load_model(text, Config, "cfg.yaml")
    return [str(p) for p in caught.value.problems]


def test_load_model_success() -> None:
    config = load_model(GOOD, Config, "cfg.yaml")
    assert config.servers[1].port.number == 443


def test_wrong_type_names_the_value() -> None:
    text = GOOD.replace("number: 80", "number: abc")
    assert _problems(text) == ["cfg.yaml:5: servers[0].port.number: expected an integer, got 'abc'"]


def test_missing_field_points_at_its_parent() -> None:
    text = GOOD.replace("    address: b.example\n", "")
    assert _problems(text) == ["cfg.yaml:6: servers[1].address: field required"]


def test_unknown_field_lists_the_expected_ones() -> None:
    text = GOOD.replace("    address: a.example", "    adress: a.example")
    assert _problems(text) == [
        "cfg.yaml:2: servers[0].address: field required",
        "cfg.yaml:3: servers[0].adress: unknown field 'adress' "
        "(expected one of: name, address, port, labels)",
    ]


def test_unknown_field_under_a_dict_of_models() -> None:
    text = GOOD + "    enabld: true\n"
    assert _problems(text) == [
        "cfg.yaml:12: hosts.HV01.enabld: unknown field 'enabld' (expected one of: number, enabled)"
    ]


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        ("number: 443", "cfg.yaml:8: servers[1].port.number: must be at most 65535, got 70000"),
        ("port: {number: 443}", "cfg.yaml:8: servers[1].port: expected a mapping"),
        ("name: b", "cfg.yaml:6: servers[1].name: expected text, got 5 (put it in quotes"),
    ],
)
def test_messages_are_rewritten(replace: str, expected: str) -> None:
    substitute = {
        "number: 443": "number: 70000",
        "port: {number: 443}": "port: 443",
        "name: b": "name: 5",
    }[replace]
    (problem,) = _problems(GOOD.replace(replace, substitute))
    assert problem.startswith(expected)


def test_bool_text_gets_quoting_advice() -> None:
    (problem,) = _problems(GOOD.replace("name: a", "name: a\n    labels: {env: no}"))
    assert problem == (
        "cfg.yaml:3: servers[0].labels.env: expected text, got false "
        "(put it in quotes to keep it as text)"
    )


def test_problems_are_sorted_by_line_and_str_is_one_per_line() -> None:
    text = GOOD.replace("number: 5986", "number: x").replace("number: 80", "number: y")
    with pytest.raises(YamlValidationError) as caught:
        load_model(text, Config, "cfg.yaml")
    lines = str(caught.value).splitlines()
    assert [line.split(":")[1] for line in lines] == ["5", "11"]


def test_load_model_from_path(tmp_path: Path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_model(path, Config).servers[0].name == "a"


def test_unreadable_file_is_a_yaml_error(tmp_path: Path) -> None:
    with pytest.raises(YamlError) as caught:
        load_model(tmp_path / "absent.yaml", Config, "absent.yaml")
    assert str(caught.value) == "absent.yaml: the file cannot be read: No such file or directory"


def test_validation_error_does_not_chain_pydantic() -> None:
    with pytest.raises(YamlValidationError) as caught:
        load_model("servers: 1\n", Config, "cfg.yaml")
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# libyaml (PyYAML's CSafeLoader) parses when PyYAML has it; the pure-Python
# SafeLoader words every error. Both must see the same data on the same lines.
SHIPPED_YAML = sorted(
    p
    for pattern in ("policies/*.yaml", "deploy/**/*.yaml", "bot/**/*.yaml")
    for p in Path(__file__).resolve().parents[1].glob(pattern)
)


def _outcome(loader: type[yaml.SafeLoader], text: str) -> object:
    try:
        doc = yamlio._compose(loader, text, "f.yaml")
    except YamlError:
        return "refused"  # worded by the pure-Python loader either way
    return doc.data, doc.lines


@pytest.mark.skipif(yamlio._FAST_LOADER is None, reason="PyYAML without libyaml")
@pytest.mark.parametrize("path", SHIPPED_YAML, ids=lambda p: str(p.relative_to(p.parents[1])))
def test_libyaml_and_the_pure_loader_agree_on_shipped_files(path: Path) -> None:
    assert yamlio._FAST_LOADER is not None
    text = path.read_text(encoding="utf-8")
    assert _outcome(yamlio._FAST_LOADER, text) == _outcome(yaml.SafeLoader, text)


@pytest.mark.parametrize(
    "text", ["a: [1, 2\nb: 3\n", "a: 1\na: 2\n", "a: b: c\n", "- a\nb: 1\n", "a: !!python/none x\n"]
)
def test_an_error_is_worded_by_the_pure_loader(text: str) -> None:
    with pytest.raises(YamlError) as fast:
        load_yaml(text, "f.yaml")
    with pytest.raises(YamlError) as pure:
        yamlio._compose(yaml.SafeLoader, text, "f.yaml")
    assert str(fast.value) == str(pure.value)
