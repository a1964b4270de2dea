"""docs/configuration.md is the one configuration reference: checked against the code.

The page's tables (``| key | default | example | meaning |``) name every key by its dotted
path (``server.listen``, ``chains.NAME.models[].timeout``) with two TOML values. Only the
public ``config.parse(data, env)`` / ``config.load(path, env)`` and the ``Config`` they return
are used, so the checks hold however the configuration code is organised:

- documented keys exist: all examples together parse, and a misspelling of any documented key
  is rejected (the parser refuses unknown keys), so a stale or misspelled row fails;
- documented defaults are the defaults: setting a key to its documented default gives the same
  ``Config`` as leaving it out;
- no key is missing from the page: with every documented example set, every field of the
  resulting ``Config`` (walked generically: nested dataclasses, chains, models) differs from the
  ``Config`` without them. A key the parser reads but the page omits sets a field no documented
  key changes, so its field keeps its default and the test names it;
- ``config.example.toml`` sets exactly the documented keys;
- the environment table lists exactly the variables ``load``/``parse`` read (recorded through
  the ``env`` mapping they are given), and each "overrides `key`" row does what it says.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llm_router_server import config
from llm_router_server.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "config.example.toml"
KEY_HEADER = "| key | default | example | meaning |"
ENV_HEADER = "| variable | meaning |"
CHAIN = "default"  # the chain that stands for NAME
# The smallest configuration with chains: the documented chain keys go into "default";
# "cloud" exists so that default_chain has another valid value.
BASE: dict[str, Any] = {
    "chains": {
        "default": {"models": [{"model": "base-model"}]},
        "cloud": {"models": [{"model": "base-model"}]},
    }
}
# Config fields no key sets: the name of a chain is the name of its [chains.NAME] table.
NOT_FROM_A_KEY = {"chains.*.name"}


@dataclass(frozen=True)
class Key:
    path: str
    """Dotted path as documented: ``server.listen``, ``chains.NAME.models[].timeout``."""
    required: bool
    default: Any
    example: Any

    @property
    def dotted(self) -> str:
        """The path as the parser names it in errors, for chain ``default``'s first model."""
        return self.path.replace("NAME", CHAIN).replace("[]", "[0]")


def cells(row: str) -> list[str]:
    """The cells of a Markdown table row; a ``|`` inside a code span does not split."""
    found, cell, in_code = [], "", False
    for char in row.strip().strip("|"):
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            found.append(cell.strip())
            cell = ""
        else:
            cell += char
    return [*found, cell.strip()]


def table_rows(text: str, header: str) -> Iterator[list[str]]:
    """Rows of every table in ``text`` whose header line is ``header``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != header:
            continue
        for row in lines[i + 2 :]:
            if not row.startswith("|"):
                break
            yield cells(row)


def code(cell: str, where: str) -> str:
    """The text of a cell that is one code span."""
    found = re.fullmatch(r"`([^`]+)`", cell)
    assert found, f"{where}: expected one value in backticks, got {cell!r}"
    return found.group(1)


def toml_value(cell: str, where: str) -> Any:
    return tomllib.loads(f"v = {code(cell, where)}")["v"]


def documented_keys() -> list[Key]:
    keys = []
    for key, default, example, _meaning in table_rows(DOC.read_text("utf-8"), KEY_HEADER):
        path = code(key, "key column")
        required = default == "required"
        keys.append(
            Key(
                path=path,
                required=required,
                default=None if required else toml_value(default, f"{path} default"),
                example=toml_value(example, f"{path} example"),
            )
        )
    return keys


KEYS = documented_keys()


def put(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """Set ``path`` in ``data`` (NAME is chain ``default``, ``[]`` its first model)."""
    node = data
    *tables, last = path.replace("NAME", CHAIN).split(".")
    for part in tables:
        if part.endswith("[]"):
            node = node.setdefault(part[:-2], [{}])[0]
        else:
            node = node.setdefault(part, {})
    node[last] = copy.deepcopy(value)
    return data


def with_examples(skip: str = "") -> dict[str, Any]:
    """BASE with every documented key (but ``skip``) set to its example; outer keys first,
    so a model key lands in the model list that ``chains.NAME.models`` set."""
    data = copy.deepcopy(BASE)
    for key in sorted(KEYS, key=lambda k: k.path.count(".")):
        if key.path != skip:
            put(data, key.path, key.example)
    return data


@pytest.fixture
def example_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in a folder where the files the examples name (``tls.*_file``) exist."""
    monkeypatch.chdir(tmp_path)
    for key in KEYS:
        if key.path.endswith("_file"):
            (tmp_path / key.example).write_text("-----BEGIN CERTIFICATE-----\n")


def misspelled(name: str) -> str:
    swapped = name[:-2] + name[-1] + name[-2]
    return swapped if swapped != name else name + "x"


def test_the_page_documents_each_key_once() -> None:
    paths = [k.path for k in KEYS]
    assert len(paths) > 30, "the key tables of docs/configuration.md were not found"
    assert len(paths) == len(set(paths)), "a key is documented twice"


@pytest.mark.usefixtures("example_files")
def test_every_documented_key_parses_with_its_example() -> None:
    config.parse(with_examples(), {})


@pytest.mark.usefixtures("example_files")
@pytest.mark.parametrize("key", KEYS, ids=lambda k: k.path)
def test_a_misspelling_of_a_documented_key_is_rejected(key: Key) -> None:
    """So a documented key that the code does not know (renamed, removed) cannot pass."""
    data = with_examples(skip=key.path)
    wrong = key.path.rsplit(".", 1)
    wrong[-1] = misspelled(wrong[-1])
    typo = ".".join(wrong)
    assert typo not in {k.path for k in KEYS}
    put(data, typo, key.example)
    with pytest.raises(ConfigError) as raised:
        config.parse(data, {})
    if not key.required:  # a required key missing fails as missing, before the typo
        assert Key(typo, False, None, None).dotted in str(raised.value)


@pytest.mark.parametrize("key", [k for k in KEYS if not k.required], ids=lambda k: k.path)
def test_a_documented_default_is_the_default(key: Key) -> None:
    assert config.parse(put(copy.deepcopy(BASE), key.path, key.default), {}) == config.parse(
        BASE, {}
    ), f"{key.path} = {key.default!r} is not what leaving it out means"


def records(values: Iterable[Any]) -> bool:
    """A non-empty collection of dataclasses (chains, models), walked into, not compared whole."""
    items = list(values)
    return bool(items) and all(map(dataclasses.is_dataclass, items))


def fields_of(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every leaf field of a parsed Config, chain and model names as * / []."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            name = f"{path}.{field.name}" if path else field.name
            yield from fields_of(getattr(value, field.name), name)
    elif isinstance(value, Mapping) and records(value.values()):
        for item in value.values():
            yield from fields_of(item, f"{path}.*")
    elif isinstance(value, tuple | list) and records(value):
        for item in value:
            yield from fields_of(item, f"{path}[]")
    else:
        yield path, value


def by_path(cfg: config.Config) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for path, value in fields_of(cfg):
        found.setdefault(path, []).append(value)
    return found


@pytest.mark.usefixtures("example_files")
def test_no_key_the_parser_reads_is_missing_from_the_page() -> None:
    base = by_path(config.parse(BASE, {}))
    documented = by_path(config.parse(with_examples(), {}))
    assert base.keys() == documented.keys()
    unchanged = sorted(p for p in base if base[p] == documented[p] and p not in NOT_FROM_A_KEY)
    assert not unchanged, (
        f"no documented key changes the Config field(s) {unchanged}: document the key that "
        "sets each in docs/configuration.md (or give it an example that is not its default)"
    )


def keys_in(data: Mapping[str, Any], documented: set[str], prefix: str = "") -> Iterator[str]:
    """Dotted keys set in a TOML document; a table that is a documented key is one key."""
    for name, value in data.items():
        path = f"{prefix}.{name}" if prefix else name
        if prefix == "chains":
            path = "chains.NAME"
        if isinstance(value, dict) and path not in documented:
            yield from keys_in(value, documented, path)
            continue
        yield path
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from keys_in(item, documented, f"{path}[]")


def test_the_example_file_sets_exactly_the_documented_keys() -> None:
    documented = {k.path for k in KEYS}
    in_example = set(keys_in(tomllib.loads(EXAMPLE.read_text("utf-8")), documented))
    assert sorted(in_example - documented) == [], "set in config.example.toml, not documented"
    assert sorted(documented - in_example) == [], "documented, not in config.example.toml"
    config.load(EXAMPLE, env={})


class ReadLog(Mapping[str, str]):
    """An environment that remembers which variables were looked up."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.read: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.read.add(name)
        return self.values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)


ENV_ROWS = list(table_rows(DOC.read_text("utf-8"), ENV_HEADER))


@pytest.mark.usefixtures("example_files")
def test_the_documented_environment_variables_are_those_the_configuration_reads() -> None:
    documented = {code(variable, "variable column") for variable, _ in ENV_ROWS}
    env = ReadLog()
    config.load(None, env)  # no file: the built-in chain, which reads OLLAMA_API_BASE
    config.parse(with_examples(), env)  # every key set
    assert sorted(env.read) == sorted(documented)


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        (code(variable, "variable column"), m.group(1))
        for variable, meaning in ENV_ROWS
        if (m := re.fullmatch(r"overrides `([^`]+)`", meaning))
    ],
)
def test_an_overriding_variable_sets_its_key(variable: str, key: str) -> None:
    example = next(k.example for k in KEYS if k.path == key)
    assert config.parse({}, {variable: example}) == config.parse(put({}, key, example), {})
