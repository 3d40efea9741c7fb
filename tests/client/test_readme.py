"""client/README.md's Python examples run, in order, in one namespace (as a reader would paste
them), against LiteSVM. Only blocks fenced as ```python run; ```sh blocks are the CLI's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "client" / "README.md"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def test_the_readme_has_python_examples() -> None:
    assert len(PYTHON_BLOCK.findall(README.read_text())) >= 3


def test_the_readme_examples_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("NISHATI_PROGRAM_ID", "NISHATI_PHONE_SALT", "NISHATI_RPC_URL"):
        monkeypatch.delenv(name, raising=False)
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(PYTHON_BLOCK.findall(README.read_text()), start=1):
        exec(compile(block, f"{README}:block{number}", "exec"), namespace)  # noqa: S102
    assert "registered 2547****5678" in capsys.readouterr().out
