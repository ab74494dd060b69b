"""Each component's options declared once, as the fields of a pydantic model, and everything derived from it.

A field made with `option(...)` is an option: its type, default, help and validation are written there and
nowhere else. From the model come

* the command line (`add_arguments`): `--field-name`, plus old spellings that still work for one release
  and print a deprecation on stderr;
* the environment (`{ENV_PREFIX}_{FIELD_NAME}`, e.g. `RISKWATCH_WORKER_TICK_EVERY_S`): a flag beats the
  environment, the environment beats the default;
* the settings object (`settings_from`), validated by pydantic; a bad value is a ConfigError naming where
  it came from (flag, environment variable, default), the option and why;
* the docs tables (`markdown_table`; `python -m riskwatch.options docs/*.md` rewrites the tables between
  `<!-- options: module:Model -->` and `<!-- end options -->`, and a unit test fails when one is stale).

Fields made without `option(...)` are what the running component adds (a Kafka partition count, a
password read from the variable an option names): never a flag, a variable or a docs row.

A secret is never an option: options name the variable or 0600 file that holds one, so help, defaults and
docs never show it.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from riskwatch.errors import ConfigError

Model = TypeVar("Model", bound="Options")

_EXTRA = "riskwatch_option"  # key of an option's own metadata in the field's json_schema_extra


class Options(BaseModel):
    """Base of a component's options: frozen; `ENV_PREFIX` names its environment variables."""

    model_config = {"frozen": True, "arbitrary_types_allowed": True, "extra": "forbid"}
    ENV_PREFIX: ClassVar[str] = "RISKWATCH"
    KAFKA_ACCOUNT: ClassVar[str] = ""  # the account a `kafka_access.KafkaOption` logs in as


def option(
    default: Any = PydanticUndefined,
    help: str = "",
    *,
    old: Sequence[str] = (),
    metavar: str | None = None,
    shown_default: str | None = None,
    hidden: bool = False,
    default_factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    """A field that is an option. `default` omitted: required. `old`: former flag spellings, still
    accepted (with a deprecation) for one release. `shown_default`: how help and docs show the default
    when the value itself says little (e.g. "" meaning "riskwatch-worker-PREFIX"). `hidden`: kept out of
    help and docs (a test hook). `constraints`: pydantic's (gt, ge, le, ...)."""
    meta = {"old": list(old), "metavar": metavar, "shown_default": shown_default, "hidden": hidden}
    extra = {"json_schema_extra": {_EXTRA: meta}, **constraints}
    if default_factory is not None:
        return Field(default_factory=default_factory, description=help, **extra)
    return Field(default, description=help, **extra)


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


Port = Annotated[int, Field(ge=0, le=65535)]
"""A TCP port to listen on or connect to (0: off, where the option says so)."""

LogLevel = Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)]
"""`--log-level`, the same in every command (any case)."""


def _meta(info: FieldInfo) -> dict[str, Any] | None:
    extra = info.json_schema_extra
    if not isinstance(extra, dict):
        return None
    meta = extra.get(_EXTRA)
    return meta if isinstance(meta, dict) else None


def options_of(model: type[Options]) -> dict[str, FieldInfo]:
    """The fields of `model` that are options, in declaration order."""
    return {name: info for name, info in model.model_fields.items() if _meta(info) is not None}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def env_var(model: type[Options], name: str) -> str:
    return f"{model.ENV_PREFIX}_{name.upper()}"


def _is_bool(info: FieldInfo) -> bool:
    return info.annotation is bool


def _choices(info: FieldInfo) -> list[str] | None:
    """The values of a Literal (possibly inside Annotated), for help and docs."""
    annotation: Any = info.annotation
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    return None


def _default_text(info: FieldInfo) -> str | None:
    """The default as help and docs show it; None when the option is required."""
    meta = _meta(info) or {}
    if meta.get("shown_default"):
        return str(meta["shown_default"])
    if info.is_required():
        return None
    default = info.get_default(call_default_factory=True)
    if isinstance(default, bool):
        return "on" if default else "off"
    if default is None or default == "":
        return "none"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def _union_has_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_union_has_path(arg) for arg in typing.get_args(annotation))
    return False


def _metavar(name: str, info: FieldInfo) -> str | None:
    meta = _meta(info) or {}
    if meta.get("metavar"):
        return str(meta["metavar"])
    if _choices(info):
        return "{" + ",".join(_choices(info) or []) + "}"
    if _union_has_path(info.annotation):
        return "FILE" if not name.endswith("dir") else "DIR"
    return None


class OldSpellings(argparse.Action):
    """Stores like `store`, and says on stderr when an old spelling was used."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        self.current = kwargs.pop("current")
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if option_string and option_string != self.current:
            print(
                f"{parser.prog}: warning: {option_string} is deprecated and goes in the next release; "
                f"use {self.current}",
                file=sys.stderr,
            )
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser, model: type[Options]) -> None:
    """One flag per option of `model` (and its old spellings). Unset flags stay out of the namespace, so
    `settings_from` can tell a flag from the environment and the default."""
    for name, info in options_of(model).items():
        meta = _meta(info) or {}
        current = flag(name)
        if meta["hidden"]:
            help_text = argparse.SUPPRESS
        else:
            default = _default_text(info)
            said = "required" if default is None else f"default: {default}"
            help_text = f"{info.description} ({said}; env {env_var(model, name)})".replace("%", "%%")
        if _is_bool(info):
            parser.add_argument(
                current, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                help=help_text,
            )  # fmt: skip
            continue
        parser.add_argument(
            current, *meta["old"], dest=name, action=OldSpellings, current=current,
            default=argparse.SUPPRESS, metavar=_metavar(name, info), help=help_text,
        )  # fmt: skip


def _source(model: type[Options], name: str, args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    if hasattr(args, name):
        return f"flag {flag(name)}"
    if env_var(model, name) in environ:
        return f"environment variable {env_var(model, name)}"
    return f"default of {flag(name)}"


def settings_from(
    model: type[Model],
    args: argparse.Namespace,
    environ: Mapping[str, str],
    context: Mapping[str, Any] | None = None,
    **fixed: Any,
) -> Model:
    """`model` from the flags in `args`, else `environ`, else the defaults; `fixed` sets fields that are
    not options (or overrides one). A bad or missing value is a ConfigError naming its source."""
    values: dict[str, Any] = {}
    for name in options_of(model):
        if hasattr(args, name):
            values[name] = getattr(args, name)
        elif env_var(model, name) in environ:
            values[name] = environ[env_var(model, name)]
    values.update(fixed)
    given = {"environ": environ, "kafka_account": model.KAFKA_ACCOUNT, **(context or {})}
    # A first pass reads no secret (see kafka_access.KafkaOption): a wrong option is reported before a
    # missing password.
    _validate(model, values, {**given, "dry_run": True}, args, environ)
    return _validate(model, values, given, args, environ)


def _validate(
    model: type[Model],
    values: dict[str, Any],
    context: dict[str, Any],
    args: argparse.Namespace,
    environ: Mapping[str, str],
) -> Model:
    try:
        return model.model_validate(values, context=context)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a check across options (model_validator)
            reason = str(error["msg"]).removeprefix("Value error, ")
            raise ConfigError("command line", "options", reason) from None
        name = str(error["loc"][0])
        if error["type"] == "missing":
            raise ConfigError(
                "command line", flag(name), f"required: give {flag(name)} or set {env_var(model, name)}"
            ) from None
        got = error.get("input")
        reason = f"{error['msg']} (got {got!r})" if isinstance(got, (str, int, float)) else error["msg"]
        raise ConfigError(_source(model, name, args, environ), flag(name), reason) from None


def markdown_table(model: type[Options]) -> str:
    """The docs table of `model`'s options: flag, environment variable, default, meaning."""
    rows = ["| option | environment | default | meaning |", "|---|---|---|---|"]
    for name, info in options_of(model).items():
        meta = _meta(info) or {}
        if meta["hidden"]:
            continue
        metavar = _metavar(name, info)
        shown = f"`{flag(name)} {metavar}`" if metavar and not _choices(info) else f"`{flag(name)}`"
        if _is_bool(info):
            shown = f"`{flag(name)}` / `--no-{flag(name)[2:]}`"
        default = _default_text(info)
        meaning = str(info.description).replace("|", "\\|")
        if _choices(info):
            meaning += f" ({', '.join(_choices(info) or [])})"
        if meta["old"]:
            meaning += f"; formerly {', '.join(f'`{o}`' for o in meta['old'])}"
        rows.append(
            f"| {shown} | `{env_var(model, name)}` | {'required' if default is None else f'`{default}`'} "
            f"| {meaning} |"
        )
    return "\n".join(rows) + "\n"


_BLOCK = re.compile(r"(<!-- options: ([\w.]+):(\w+) -->\n)(.*?)(<!-- end options -->)", re.DOTALL)


def _model(module: str, name: str) -> type[Options]:
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, Options)):
        raise ConfigError(module, name, "is not an options model")
    return found


def rendered_docs(text: str) -> str:
    """`text` with every options block regenerated from its model."""
    return _BLOCK.sub(lambda m: m[1] + markdown_table(_model(m[2], m[3])) + m[5], text)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m riskwatch.options [--check] FILE...`: rewrite (or, with --check, list) stale tables."""
    parser = argparse.ArgumentParser(prog="python -m riskwatch.options", description=main.__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        text = path.read_text(encoding="utf-8")
        fresh = rendered_docs(text)
        if fresh != text:
            stale.append(path)
            if not args.check:
                path.write_text(fresh, encoding="utf-8")
    for path in stale:
        print(f"{path}: options table {'stale' if args.check else 'regenerated'}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":  # through the module proper: its Options is the class the models derive from
    from riskwatch.options import main as options_main

    raise SystemExit(options_main())
