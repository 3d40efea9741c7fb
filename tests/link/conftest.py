"""Fixtures for the sbf-link tests: the LLVM toolchain and linking IR with the pipeline.

The tests need Debian's LLVM 22 tools (``$SBF_LLVM_BIN``), which scripts/bootstrap.sh installs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.link.support import IR_HEADER, TOOLS, LinkIR

sys.path.insert(0, str(TOOLS))

from sbf_link import pipeline
from sbf_link.toolchain import Toolchain


@pytest.fixture(scope="session")
def toolchain() -> Toolchain:
    tools = Toolchain.from_environment()
    if not (tools.bin_dir / "llc").exists():
        pytest.fail(f"LLVM 22 tools not found in {tools.bin_dir}: run scripts/bootstrap.sh")
    return tools


@pytest.fixture
def link_ir(toolchain: Toolchain, tmp_path: Path) -> LinkIR:
    """Link a fixture (a ``Path``) or IR text (a ``str``, IR_HEADER is prepended)."""

    def link(source: Path | str, exports: Sequence[str] = (), name: str = "program") -> Path:
        if isinstance(source, Path):
            ll = source
        else:
            ll = tmp_path / f"{name}.ll"
            ll.write_text(IR_HEADER + source)
        bitcode = tmp_path / f"{name}.bc"
        toolchain.run("llvm-as", ll, "-o", bitcode)
        output = tmp_path / f"{name}.so"
        job = pipeline.LinkJob(inputs=(bitcode,), output=output, exports=tuple(exports))
        pipeline.link(job, toolchain)
        return output

    return link
