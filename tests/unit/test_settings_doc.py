"""docs/settings.md is what the settings classes say."""

from __future__ import annotations

from nishati_dev.settings_doc import OUTPUT, render


def test_the_settings_reference_is_current() -> None:
    assert OUTPUT.read_text() == render(), f"{OUTPUT} is stale: python -m nishati_dev.settings_doc"


def test_every_setting_is_listed_once_with_its_variable() -> None:
    variables = [line.split("`")[1] for line in render().splitlines() if line.startswith("| `")]
    assert len(variables) == len(set(variables)), "a variable is listed twice"
    for expected in (
        "NISHATI_RPC_URL",
        "NISHATI_PAYMENTS",
        "NISHATI_DARAJA_PASSKEY",
        "NISHATI_LOCALNET_RPC_PORT",
        "NISHATI_STACK_RPC_PORT",
        "DARAJA_SIM_CALLBACK_DELAY_SECS",
    ):
        assert expected in variables
