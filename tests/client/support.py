"""What the client's tests share: the ``nishati`` command run in-process, other scripts' digits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nishati_client.cli import main

# The digits 0-9 of other scripts, which Python's \d and str.isdigit() take for digits too.
OTHER_DIGITS = {
    "arabic-indic": "".join(map(chr, range(0x0660, 0x066A))),
    "extended-arabic-indic": "".join(map(chr, range(0x06F0, 0x06FA))),
    "full-width": "".join(map(chr, range(0xFF10, 0xFF1A))),
    "superscript": "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079",
}


def written_in(script: str, text: str) -> str:
    """``text`` with its digits 0-9 written as ``script``'s."""
    return text.translate(str.maketrans("0123456789", OTHER_DIGITS[script]))


class Cli:
    """In-process runs with captured output."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *argv: str | Path) -> tuple[int, str, str]:
        self.capsys.readouterr()
        try:
            main([str(arg) for arg in argv])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *argv: str | Path) -> Any:
        code, out, err = self(*argv, "--json")
        assert code == 0, err
        return json.loads(out)

    def fails(self, *argv: str | Path, code: int = 1) -> str:
        """The one-line error of a failing run."""
        actual, out, err = self(*argv)
        assert actual == code, (out, err)
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert lines[0].startswith("nishati: error: ")
        return lines[0].removeprefix("nishati: error: ")
