"""Load a site registry file: YAML (or JSON) -> Builder -> Registry, every problem collected."""

from __future__ import annotations

from pathlib import Path

import orjson
import yaml

from riskwatch.registry.registry import Problem, Registry, RegistryError

_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: several times the pure-Python speed

# A registry is 8 levels deep. libyaml's composer recurses in C (a few ten thousand levels crash the
# process) and its scanner is quadratic in flow nesting, so the depth is checked on the event stream,
# which stops at the first level too many, before anything is composed.
MAX_DEPTH = 64
# Aliases share nodes, but the builder walks them as copies: a few nested aliases ("billion laughs")
# would make it walk billions. The expanded document may be at most this many nodes, or twice the written.
MAX_EXPANDED_NODES = 1_000_000

_OPEN = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_CLOSE = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def load_registry(path: str | Path) -> Registry:
    """Load and check a YAML (or *.json) registry; raises RegistryError naming file, path and reason."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RegistryError([Problem.of(name, "(file)", f"cannot read: {exc.strerror or exc}")]) from exc
    except UnicodeDecodeError as exc:
        where = f"byte offset {exc.start}"
        raise RegistryError([Problem.of(name, where, f"not UTF-8 text: {exc.reason}")]) from exc
    if name.endswith(".json"):  # JSON parses ~50x faster than YAML: use it for generated 100k+ registries
        try:
            return Registry.from_dict(orjson.loads(text), source=name)
        except orjson.JSONDecodeError as exc:  # orjson also refuses lone surrogates and nesting > 1024
            raise RegistryError(
                [Problem.of(name, f"line {exc.lineno}, column {exc.colno}", f"not valid JSON: {exc.msg}")]
            ) from exc
    try:
        _check_shape(name, text)
        doc = yaml.load(text, Loader=_YamlLoader)  # a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"
        reason = f"not valid YAML: {getattr(exc, 'problem', None) or exc}"
        raise RegistryError([Problem.of(name, where, reason)]) from exc
    except (ValueError, OverflowError) as exc:  # a scalar the safe constructor cannot build
        # e.g. an integer of more than 4300 digits or a date like 2024-02-30
        why = str(exc).split(";")[0]  # drop Python's advice on sys.set_int_max_str_digits
        raise RegistryError([Problem.of(name, _unbuildable(text), f"not usable YAML: {why}")]) from exc
    return Registry.from_dict(doc, source=name)


def _check_shape(name: str, text: str) -> None:
    """Refuse a document nested deeper than MAX_DEPTH or whose aliases expand it past the bound."""
    depth = written = expanded = 0
    open_at: list[tuple[str | None, int]] = []  # per open collection: its anchor, `expanded` at its start
    sizes: dict[str, int] = {}  # anchor -> expanded nodes under it
    for event in yaml.parse(text, Loader=_YamlLoader):
        if isinstance(event, yaml.AliasEvent):
            written += 1
            expanded += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            written += 1
            expanded += 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, _OPEN):
            written += 1
            expanded += 1
            depth += 1
            if depth > MAX_DEPTH:
                where = _where(event)
                reason = f"nested deeper than {MAX_DEPTH} levels (a registry needs 8)"
                raise RegistryError([Problem.of(name, where, reason)])
            open_at.append((event.anchor, expanded))
        elif isinstance(event, _CLOSE):
            depth -= 1
            anchor, start = open_at.pop()
            if anchor is not None:
                sizes[anchor] = expanded - start + 1
    if expanded > max(MAX_EXPANDED_NODES, 2 * written):
        reason = f"aliases expand the document to {expanded} nodes ({written} written); refused"
        raise RegistryError([Problem.of(name, "(document)", reason)])


def _where(item: yaml.Event | yaml.Node) -> str:
    mark = item.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(document)"


def _unbuildable(text: str) -> str:
    """Where the first scalar the safe constructor refuses is (only on that error path)."""
    constructor = yaml.SafeLoader("")
    todo = [yaml.compose(text, Loader=_YamlLoader)]  # depth already checked, so composing is safe
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except (ValueError, OverflowError):
                return _where(node)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(reversed(node.value))
        elif isinstance(node, yaml.MappingNode):
            todo.extend(n for pair in reversed(node.value) for n in reversed(pair))
    return "(document)"
