"""The package's public surface: ``nishati_client.__all__``, sorted, complete and importable, with
the package itself still cheap to import."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import nishati_client
from nishati_client.errors import NishatiClientError

INIT = Path(nishati_client.__file__)
# Modules of the package that are tools, not library: they export nothing.
NOT_LIBRARY = {"nishati_client.cli", "nishati_client.idl", "nishati_client.codec"}


def library_modules() -> list[ModuleType]:
    names = [
        info.name
        for info in pkgutil.walk_packages(nishati_client.__path__, "nishati_client.")
        if not any(info.name == n or info.name.startswith(f"{n}.") for n in NOT_LIBRARY)
    ]
    return [importlib.import_module(name) for name in names]


def defined_in(module: ModuleType) -> dict[str, object]:
    """The public classes and functions ``module`` defines (not those it imports)."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }


def test_all_is_sorted() -> None:
    assert nishati_client.__all__ == sorted(nishati_client.__all__)


def type_checker_imports() -> dict[str, str]:
    """The names ``__init__`` imports for type checkers, each with the module it names."""
    tree = ast.parse(INIT.read_text())
    [block] = [node for node in tree.body if isinstance(node, ast.If)]
    assert ast.unparse(block.test) == "typing.TYPE_CHECKING"
    imported: dict[str, str] = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            # ``from nishati_client import phone`` imports a module of the package.
            module = alias.name if node.module == "nishati_client" else str(node.module)
            imported[alias.asname or alias.name] = module
    return imported


def test_every_exported_name_is_what_type_checkers_see() -> None:
    """Imported from the package, each name is the very object (class, function or module)
    its module defines, the one type checkers are shown."""
    imported = type_checker_imports()
    assert sorted(imported) == nishati_client.__all__
    namespace: dict[str, object] = {}
    exec(f"from nishati_client import {', '.join(nishati_client.__all__)}", namespace)  # noqa: S102
    for name, home in imported.items():
        value = namespace[name]
        if isinstance(value, ModuleType):
            assert value.__name__ == f"nishati_client.{home}"
        else:
            assert getattr(value, "__module__", None) == home, name
            assert value is vars(importlib.import_module(home))[name]


def test_every_public_name_of_the_package_is_in_all() -> None:
    """As httpx checks its own: nothing public in the package's namespace is left out (its
    submodules, bound there as they are imported, aside)."""
    for name in nishati_client.__all__:
        getattr(nishati_client, name)
    library_modules()
    public = {
        name
        for name, value in vars(nishati_client).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public | {"phone"} == set(nishati_client.__all__)


def test_all_lists_every_error_account_and_address() -> None:
    """What a library user needs: every error the package raises, every account it decodes and
    every program-derived address."""
    needed = set()
    for module in library_modules():
        for name, value in defined_in(module).items():
            if inspect.isclass(value) and (
                issubclass(value, NishatiClientError) or hasattr(value, "from_decoded")
            ):
                needed.add(name)
            if module.__name__ == "nishati_client.pda":
                needed.add(name)
    assert needed <= set(nishati_client.__all__), needed - set(nishati_client.__all__)


def test_importing_the_package_does_not_load_the_solana_stack() -> None:
    """It takes over half a second to import; the package alone does not pay for it."""
    heavy = ("nishati_client.", "solders", "solana", "anchorpy")
    code = f"import sys, nishati_client; print([m for m in sys.modules if m.startswith({heavy})])"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
