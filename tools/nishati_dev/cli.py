"""``nishati-dev COMMAND``: the development tools under one command."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from importlib import import_module

# Command: (module whose main(argv) runs it, what it does).
COMMANDS = {
    "stack": ("nishati_dev.stack", "a whole local market until Ctrl-C; prints every URL and key"),
    "demo": ("nishati_dev.demo", "a market day on the local stack, then a summary"),
    "localnet": ("nishati_dev.localnet", "a local validator with the program deployed"),
    "daraja-sim": ("nishati_dev.daraja_sim.__main__", "the Daraja (M-Pesa) simulator"),
    "sms-sim": ("nishati_dev.sms_sim", "the SMS (Africa's Talking) simulator"),
    "simulate": ("nishati_dev.simulate", "simulated meters sending signed readings"),
    "settings-doc": ("nishati_dev.settings_doc", "write docs/settings.md from the settings"),
}


def usage() -> str:
    lines = ["usage: nishati-dev COMMAND [--help | options]", "", "commands:"]
    lines += [f"  {name:<14}{what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"nishati-dev: no command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    command: Callable[[list[str]], int | None] = import_module(COMMANDS[args[0]][0]).main
    return command(args[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
