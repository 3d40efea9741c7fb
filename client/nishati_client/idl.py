"""The program's Anchor IDL (``idl/nishati.json``, shipped inside this package as a link)."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from anchorpy.idl_adapter import Idl

IDL_TEXT = files("nishati_client").joinpath("nishati.json").read_text(encoding="utf-8")
IDL_JSON: dict[str, Any] = json.loads(IDL_TEXT)
IDL_PROGRAM_ID: str = IDL_JSON["address"]


@cache
def idl() -> Idl:
    return Idl.from_json(IDL_TEXT)
