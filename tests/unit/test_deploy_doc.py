"""docs/deploy.md and its example files (docs/deploy/) name only what exists: every ``NISHATI_*``
variable is a setting of the oracle or the client, every ``nishati`` and ``nishati-oracle``
command line names real subcommands and options, the example ACL spells the oracle's topics, and
the example settings pass production mode."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic_settings import BaseSettings
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from nishati_client.cli import app as client_app
from nishati_oracle.cli import parser as oracle_parser
from nishati_oracle.core.settings import (
    Mode,
    MqttSettings,
    OracleSettings,
    Payments,
    environment_name,
    load_settings,
)
from nishati_oracle.readings.mqtt import readings_topic, rejected_topic

DOCS = Path(__file__).resolve().parents[2] / "docs"
GUIDE = DOCS / "deploy.md"
EXAMPLES = sorted((DOCS / "deploy").iterdir())
VARIABLE = re.compile(r"\bNISHATI_[A-Z0-9_]*[A-Z0-9]")
COMMANDS = ("nishati", "nishati-oracle")
# What a placeholder stands for in a command line: the system program's address, a real key.
PLACEHOLDER = str(Pubkey.default())


def variables(group: type[BaseSettings]) -> Iterator[str]:
    """Every environment variable of ``group`` and of the groups within it."""
    for name, field in group.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseSettings):
            yield from variables(nested)
        else:
            yield environment_name(group, name)


def test_every_variable_named_is_a_setting() -> None:
    known = set(variables(OracleSettings))
    for path in [GUIDE, *EXAMPLES]:
        named = set(VARIABLE.findall(path.read_text()))
        assert named <= known, f"{path.name} names no setting: {sorted(named - known)}"


def code_lines(markdown: str) -> Iterator[str]:
    """The lines of fenced code blocks (continuations joined) and every inline code span."""
    fenced = False
    pending = ""
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            pending += line.rstrip().removesuffix("\\")
            if not line.rstrip().endswith("\\"):
                yield pending
                pending = ""
        else:
            yield from re.findall(r"`([^`]+)`", line)


def command_lines() -> Iterator[list[str]]:
    """Each command line of the guide and the systemd unit's ``ExecStart`` that runs ``nishati``
    or ``nishati-oracle`` with arguments, as words, without leading ``VAR=value`` words or a
    comment."""
    lines = list(code_lines(GUIDE.read_text()))
    for path in EXAMPLES:
        lines += [
            line.removeprefix("ExecStart=")
            for line in path.read_text().splitlines()
            if line.startswith("ExecStart=")
        ]
    for line in lines:
        # A placeholder (``<market>``) is one word, whatever it holds: a public key, which
        # every argument that takes a key, a name or a number takes.
        words = shlex.split(re.sub(r"<[^>]*>", PLACEHOLDER, line), comments=True)
        while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
            words.pop(0)
        # A program's name alone is a name (the user nishati, the topic root), not a command.
        if len(words) > 1 and Path(words[0]).name in COMMANDS:
            yield [Path(words[0]).name, *words[1:]]


def check_click(command: Any, words: list[str], line: str) -> None:
    """The words name subcommands of ``command`` (typer's click command tree: a group has
    ``commands``) and options each of them has."""
    words = list(words)
    while words:
        word = words.pop(0)
        if word.startswith("-"):
            option = next(
                (p for p in command.params if p.param_type_name == "option" and word in p.opts),
                None,
            )
            assert option is not None, f"{line!r}: {command.name} has no option {word}"
            if not option.is_flag and words:
                words.pop(0)
        elif hasattr(command, "commands"):
            sub = command.commands.get(word)
            assert sub is not None, f"{line!r}: {command.name} has no command {word}"
            command = sub
    assert not hasattr(command, "commands"), f"{line!r}: names no command of {command.name}"


def check_argparse(words: list[str], line: str) -> None:
    """The words parse as a ``nishati-oracle`` command line, placeholders as values."""
    try:
        oracle_parser().parse_args(words)
    except SystemExit:
        raise AssertionError(f"{line!r} is not a nishati-oracle command line") from None


def test_every_command_named_exists() -> None:
    client = typer.main.get_command(client_app)
    seen = set()
    for program, *words in command_lines():
        line = shlex.join([program, *words])
        seen.add(program)
        if program == "nishati":
            check_click(client, words, line)
        else:
            check_argparse(words, line)
    assert seen == set(COMMANDS), "the guide names neither command: the parsing above is wrong"


@pytest.mark.parametrize(
    "words", [["market", "rotate"], ["market", "update", "--oracle-key", "x"], ["market"]]
)
def test_a_client_command_that_does_not_exist_is_caught(words: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_click(typer.main.get_command(client_app), words, "nishati")


@pytest.mark.parametrize("words", [["attention", "--all"], ["rotate"], ["operator"]])
def test_an_oracle_command_that_does_not_exist_is_caught(words: list[str]) -> None:
    with pytest.raises(AssertionError):
        check_argparse(words, "nishati-oracle")


def test_the_example_acl_spells_the_oracles_topics() -> None:
    root = MqttSettings().topic_root
    lines = [
        line.split()
        for line in (DOCS / "deploy" / "mosquitto.acl").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ["pattern", "write", readings_topic(root, "+", "%u")] in lines
    assert ["pattern", "read", rejected_topic(root, "+", "%u")] in lines
    users = [words[1] for words in lines if words[0] == "user"]
    env = (DOCS / "deploy" / "oracle.env").read_text()
    username = re.search(rf"^{environment_name(MqttSettings, 'username')}=(.+)$", env, re.M)
    assert username is not None, "oracle.env sets no MQTT user"
    assert users == [username.group(1)], "the ACL's oracle is not oracle.env's MQTT user"
    assert ["topic", "read", readings_topic(root, "+", "+")] in lines
    assert ["topic", "readwrite", rejected_topic(root, "+", "+")] in lines
    # The guide quotes the same lines.
    guide = GUIDE.read_text()
    for words in lines:
        assert " ".join(words) in guide, f"the guide does not quote {' '.join(words)!r}"


def test_the_example_settings_pass_production_with_the_daraja_sandbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """oracle.env, its placeholders filled and the two files the unit adds, starts in production
    mode: nothing is missing and nothing is refused."""
    for name in list(os.environ):
        if name.startswith("NISHATI_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    filled = {"NISHATI_MARKET": str(Keypair().pubkey()), "NISHATI_PHONE_SALT": "ab" * 32}
    for line in (DOCS / "deploy" / "oracle.env").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            monkeypatch.setenv(name, filled.get(name, re.sub(r"<[^>]*>", "filled-in", value)))
    monkeypatch.setenv("NISHATI_ORACLE_KEYPAIR", str(tmp_path / "oracle-keypair"))
    monkeypatch.setenv("NISHATI_PHONE_KEY_FILE", str(tmp_path / "phone-key"))
    settings = load_settings()
    assert settings.mode is Mode.production
    assert settings.payments.provider is Payments.sandbox
    assert settings.serving_problems() == []
