"""The product packages as an operator installs them: a wheel, in a virtual environment of its
own, away from the repository. They must import nothing of the development tooling
(``nishati_dev``), nothing from the checkout, and ship every module and migration they hold."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from nishati_dev.paths import REPO_ROOT

PRODUCT_SOURCES = {"nishati_client": REPO_ROOT / "client", "nishati_oracle": REPO_ROOT / "oracle"}

IMPORT_PROBE = """
import json, sys
import nishati_client, nishati_oracle
from nishati_oracle import app
print(json.dumps({
    name: getattr(module, "__file__", None) or ""
    for name, module in list(sys.modules.items())
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution built from a copy of its sources, so the checkout gains no build files."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(REPO_ROOT / "pyproject.toml", source)
    for folder in PRODUCT_SOURCES.values():
        shutil.copytree(
            folder, source / folder.name, ignore=shutil.ignore_patterns("__pycache__", "*.md")
        )
    out = tmp_path_factory.mktemp("dist")
    build = ["pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--wheel-dir", str(out)]
    subprocess.run(
        [sys.executable, "-m", *build, str(source)],
        check=True,
        capture_output=True,
    )
    [built] = out.glob("nishati-*.whl")
    return built


def test_the_wheel_ships_every_module_and_migration(wheel: Path) -> None:
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for package, root in PRODUCT_SOURCES.items():
        files = [
            path.relative_to(root).as_posix()
            for path in (root / package).rglob("*")
            if path.suffix in {".py", ".typed", ".json", ".ini", ".mako"}
        ]
        assert files
        assert sorted(set(files) - shipped) == []


def test_installed_packages_import_no_development_tooling(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(purelib)
    # The third-party dependencies come from the project's environment as a plain path entry:
    # its .pth files (the editable installs that point into the checkout) are not processed.
    dependencies = sysconfig.get_paths()["purelib"]
    (purelib / "dependencies.pth").write_text(dependencies + "\n")

    probe = subprocess.run(
        [python, "-c", IMPORT_PROBE],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0, probe.stderr
    modules: dict[str, str] = json.loads(probe.stdout)

    assert modules["nishati_oracle"].startswith(str(purelib))
    assert modules["nishati_client"].startswith(str(purelib))
    assert sorted(name for name in modules if name.startswith("nishati_dev")) == []
    from_checkout = sorted(
        name
        for name, path in modules.items()
        if path.startswith(str(REPO_ROOT) + "/") and not path.startswith(dependencies)
    )
    assert from_checkout == []
