"""Hostile registry files: `riskwatch config check` accepts them or names file, field and why.

A valid registry is broken in one or a few places (wrong types, huge or non-finite numbers, lone
surrogates, long strings, deep nesting, aliases, missing or unknown fields, stray bytes), written as
YAML or JSON, and loaded the way the CLI, the bridge and the worker load it. Never an unhandled
exception: either a Registry the engine compiles, or a RegistryError whose every problem names the
file, a place in it and a reason, in text that prints.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processors.engine.model import compile_model
from riskwatch.cli import main
from riskwatch.registry import Registry, RegistryError, load_registry
from tests.unit.registry.conftest import BASE

FUZZ = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
MAX_PROBLEM_CHARS = 2000  # a problem line stays readable whatever the document held

# Raw document text spliced in where a placeholder value was dumped: what a serialiser cannot write
# (nesting deeper than its recursion, integers past Python's digit limit) or YAML-only constructs.
RAW_TEXTS = st.one_of(
    st.integers(1, 40_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3_000).map(lambda n: "{a: " * n + "}" * n),
    st.integers(300, 6_000).map(lambda n: "9" * n),
    st.sampled_from(
        [
            "1e999999",
            "-1e999999",
            ".nan",
            "2024-02-30",
            "!!python/object/apply:os.system [true]",
            "!!binary aGVsbG8=",
            "*nowhere",
            "&self [*self]",
            '"\\ud800"',
            '"\\udfff tail"',
            "0x7fffffffffffffffffff",
            "!!set {a, b}",
            "!!timestamp 2001-12-14t21:59:43.10-05:00",
        ]
    ),
)

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
TEXTS = st.one_of(
    st.text(max_size=40),
    st.text(st.one_of(SURROGATES, st.characters()), min_size=1, max_size=20),
    st.integers(0, 100_000).map(lambda n: "A" * n),
    st.sampled_from(["", " ", "R1", "S1", "G1", "G3", "U1", "GT-101", "co", "red", "l2", "default", "../x"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63, max_value=10**300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0]),
    TEXTS,
)
KEYS = st.one_of(
    st.sampled_from(
        ["id", "type", "unit", "gateway", "range", "l1_high", "l2_high", "bands", "sensors", "units"]
    ),
    TEXTS,
    st.integers(),
    st.none(),
    st.booleans(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=8,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document: a container itself and each of its members."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _paths(value, (*path, i))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        doc = doc[part]
    return doc


@st.composite
def hostile_docs(draw: st.DrawFn) -> tuple[Any, dict[str, str]]:
    """The base registry with 1-4 hostile edits, and the raw texts its placeholders stand for."""
    doc: Any = yaml.safe_load(BASE)
    raws: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["replace", "raw", "delete", "add_key", "append"]))
        if op == "raw":
            placeholder = f"zzraw{len(raws)}zz"
            raws[placeholder] = draw(RAW_TEXTS)
            value: Any = placeholder
        else:
            value = draw(VALUES)
        if not path:  # the document itself
            if op == "replace":
                doc = value
            continue
        parent, last = _at(doc, path[:-1]), path[-1]
        target = parent[last]
        if op in ("replace", "raw"):
            parent[last] = value
        elif op == "delete":
            del parent[last]
        elif op == "add_key" and isinstance(target, dict):
            target[draw(KEYS)] = value
        elif op == "append" and isinstance(target, list):
            target.append(value)
    return doc, raws


def _dump(doc: Any, raws: dict[str, str], fmt: str) -> str:
    if fmt == "json":
        text = json.dumps(doc, ensure_ascii=True)  # lone surrogates as \ud800 escapes, NaN as NaN
        for placeholder, raw in raws.items():
            text = text.replace(f'"{placeholder}"', raw)
    else:
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)  # surrogates become \ud800 escapes
        for placeholder, raw in raws.items():
            text = text.replace(placeholder, raw)
    return text


def _assert_handled(source: str, load: Any) -> None:
    try:
        registry = load()
    except RegistryError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file == source
            assert problem.path and problem.reason
            line = str(problem)
            line.encode("utf-8")  # strict: no lone surrogate reaches a log or a terminal
            assert len(line) <= MAX_PROBLEM_CHARS
        str(exc).encode("utf-8")
        return
    assert isinstance(registry, Registry)
    compile_model(registry)  # accepted means usable: the worker compiles it at start


def _write(folder: Path, text: str, fmt: str, noise: bytes, at: int) -> Path:
    path = folder / f"registry.{fmt}"
    data = text.encode("utf-8")
    if noise:
        cut = at % (len(data) + 1)
        data = data[:cut] + noise + data[cut:]
    path.write_bytes(data)
    return path


@FUZZ
@given(
    case=hostile_docs(),
    fmt=st.sampled_from(["yaml", "json"]),
    noise=st.one_of(st.just(b""), st.binary(min_size=1, max_size=8)),
    at=st.integers(0, 10**6),
)
def test_hostile_registry_file_is_accepted_or_rejected_with_file_field_and_reason(
    case: tuple[Any, dict[str, str]], fmt: str, noise: bytes, at: int
) -> None:
    doc, raws = case
    with tempfile.TemporaryDirectory() as folder:
        path = _write(Path(folder), _dump(doc, raws, fmt), fmt, noise, at)
        _assert_handled(str(path), lambda: load_registry(path))
        # The CLI prints each problem (or the summary) and exits 0 or 1, in strict UTF-8.
        out, err = io.BytesIO(), io.BytesIO()
        stdout = io.TextIOWrapper(out, encoding="utf-8", errors="strict")
        stderr = io.TextIOWrapper(err, encoding="utf-8", errors="strict")
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(["config", "check", str(path)])
            stdout.flush()
            stderr.flush()
        assert code in (0, 1)
        assert str(path) in (out.getvalue() + err.getvalue()).decode("utf-8")


@FUZZ
@given(case=hostile_docs())
def test_hostile_parsed_document_is_accepted_or_rejected_with_field_and_reason(
    case: tuple[Any, dict[str, str]],
) -> None:
    """Registry.from_dict (generated registries, tests) sees Python objects no file can hold."""
    doc, _ = case
    _assert_handled("<fuzz>", lambda: Registry.from_dict(copy.deepcopy(doc), source="<fuzz>"))
