"""``python -m nishati_dev.settings_doc``: writes ``docs/settings.md``, the reference of every
setting (its environment variable, type, default and description), from the settings classes.

A group (a field whose type is itself a settings class) is walked into and listed under its
own heading; a class or group already listed is named, not repeated. ``--check`` writes
nothing and exits 1 when the file differs from what the classes say.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import IPvAnyNetwork, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from nishati_client.config import ClientSettings
from nishati_dev.daraja_sim.settings import DarajaSimSettings
from nishati_dev.paths import REPO_ROOT
from nishati_dev.settings import LocalChainSettings
from nishati_dev.sms_sim import SmsSimSettings
from nishati_dev.stack import StackSettings
from nishati_oracle.core.settings import OracleSettings, environment_name

OUTPUT = REPO_ROOT / "docs" / "settings.md"


@dataclass(frozen=True)
class Section:
    """A heading, what it configures, and its settings class."""

    title: str
    about: str
    settings: type[BaseSettings]


SECTIONS = [
    Section(
        "Client",
        "The `nishati` command and `nishati_client`; the oracle reads the same variables.",
        ClientSettings,
    ),
    Section("Oracle", "`python -m nishati_oracle`.", OracleSettings),
    Section(
        "Local chains",
        "The local validator (`nishati-dev localnet`) the stack, the demo and the tests start.",
        LocalChainSettings,
    ),
    Section("Local stack", "`nishati-dev stack`; its options win over these.", StackSettings),
    Section(
        "Daraja simulator",
        "`nishati-dev daraja-sim` (`python -m nishati_dev.daraja_sim`); every default is a "
        "published test value.",
        DarajaSimSettings,
    ),
    Section(
        "SMS simulator",
        "`nishati-dev sms-sim` (`python -m nishati_dev.sms_sim`); every default is a test value.",
        SmsSimSettings,
    ),
]


def kind(annotation: Any) -> str:
    """A field's type as an operator reads it."""
    if get_origin(annotation) in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        shown = " or ".join(kind(a) for a in options)
        return f"{shown}, optional" if len(options) < len(get_args(annotation)) else shown
    if get_origin(annotation) in (list, tuple, set):
        return f"JSON list of {' or '.join(kind(a) for a in get_args(annotation))}"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "one of " + ", ".join(str(member.value) for member in annotation)
    if annotation is SecretStr:
        return "secret"
    if annotation is Path:
        return "path"
    if annotation is IPvAnyNetwork:
        return "network (CIDR)"
    return getattr(annotation, "__name__", str(annotation))


def default(field: FieldInfo) -> str:
    """A field's default as it would be written in the environment (as code), or what it is
    ("unset", "a secret")."""
    if field.default_factory is not None:
        value: object = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    if isinstance(value, SecretStr):
        return "a secret"
    if isinstance(value, bool):
        return code("true" if value else "false")
    if isinstance(value, Enum):
        return code(str(value.value))
    if isinstance(value, Path):
        inside = value.is_relative_to(REPO_ROOT)
        return code(str(value.relative_to(REPO_ROOT) if inside else value))
    if isinstance(value, list | tuple | set):
        return code(json.dumps([str(v) for v in value]))
    return code(str(value))


def is_group(field: FieldInfo) -> bool:
    annotation = field.annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseSettings)


def code(text: str) -> str:
    return f"`{text}`"


def table(group: type[BaseSettings], names: Sequence[str]) -> list[str]:
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name in names:
        field = group.model_fields[name]
        cells = [
            code(environment_name(group, name)),
            kind(field.annotation),
            default(field),
            (field.description or "").replace("|", "\\|"),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def own_fields(group: type[BaseSettings], listed: dict[type[BaseSettings], str]) -> list[str]:
    """The fields ``group`` adds to the settings classes already listed that it extends."""
    inherited = {
        name for base, _ in listed.items() if issubclass(group, base) for name in base.model_fields
    }
    return [name for name in group.model_fields if name not in inherited]


def describe_group(
    title: str,
    about: str,
    group: type[BaseSettings],
    listed: dict[type[BaseSettings], str],
    depth: int,
) -> list[str]:
    """The group's heading, what it is and its table, then each of its groups, depth first."""
    names = own_fields(group, listed)
    bases = [where for base, where in listed.items() if issubclass(group, base)]
    listed[group] = title
    lines = [f"{'#' * depth} {title}", ""]
    if about:
        lines += [about, ""]
    if bases:
        lines += [f"Beside the {', '.join(bases)} settings.", ""]
    plain = [n for n in names if not is_group(group.model_fields[n])]
    if plain:
        lines += [*table(group, plain), ""]
    for name in names:
        field = group.model_fields[name]
        nested = field.annotation
        if not (isinstance(nested, type) and issubclass(nested, BaseSettings)):
            continue
        if nested in listed:
            lines += [f"`{name}`: the {listed[nested]} settings above.", ""]
        else:
            what = f"{field.description}." if field.description else ""
            heading = f"{title}.{name}" if depth > 2 else f"{title}: {name}"
            lines += describe_group(heading, what, nested, listed, depth + 1)
    return lines


def render() -> str:
    """The whole reference, as ``docs/settings.md`` holds it."""
    lines = [
        "# Settings",
        "",
        "Every setting of the Nishati command, the oracle and the development tools: the",
        "environment variable that sets it, its type, its default and what it does. Variables",
        "named `NISHATI_*` may also be lines of a `.env` file in the working directory. Lists are",
        "JSON (`NISHATI_CALLBACK_ALLOWLIST='[\"196.201.214.0/24\"]'`).",
        "",
        "Generated from the settings classes by `python -m nishati_dev.settings_doc`; a test fails",
        "when this file is stale, so edit the classes' descriptions, not this file.",
        "",
    ]
    listed: dict[type[BaseSettings], str] = {}
    for section in SECTIONS:
        group = section.settings
        about = f"{section.about} From `{group.__module__}.{group.__qualname__}`."
        lines += describe_group(section.title, about, group, listed, 2)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m nishati_dev.settings_doc", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"default {OUTPUT}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text() if args.output.is_file() else ""
        if current != text:
            print(
                f"{args.output} is stale: run python -m nishati_dev.settings_doc", file=sys.stderr
            )
            return 1
        return 0
    args.output.write_text(text)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
