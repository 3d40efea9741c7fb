"""Meters' logins to the MQTT broker, and the ACL that keeps each meter to its own topics.

Each meter logs in to Mosquitto with its own key (base58, as its topics spell it) as user name
and a password issued for it (``nishati-oracle meter login``), which the installer types into the
meter's console (``broker-user <key> <password>``). Mosquitto's ``acl_file`` then lets a user
publish to its own readings topic only, and read only its own rejections; the oracle's user reads
every meter's readings and writes (and may read) their rejections (:func:`acl`). Mosquitto refuses a
publication the ACL does not allow: over MQTT 5 its PUBACK says "Not authorized" (0x87); over
MQTT 3.1.1 it acknowledges and drops it. Either way no subscriber receives it.

Passwords are kept in Mosquitto's ``password_file`` format, ``<user>:$7$<iterations>$<salt>$<hash>``
(PBKDF2-SHA512, 12-byte salt, base64), written here so the oracle's host needs no
``mosquitto_passwd``. Mosquitto rereads the file on SIGHUP (``systemctl reload mosquitto``). An
issued password is 24 random bytes: the 101 iterations Mosquitto itself uses are plenty against
guessing it, and cheap for a broker that a whole fleet reconnects to after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import tempfile
from pathlib import Path

from solders.pubkey import Pubkey

HASH_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 24
# A password file only the broker (and whoever issues logins) may read.
PASSWORD_FILE_MODE = 0o640


class NotAMeterKey(ValueError):
    """A meter login's user name that is not a base58 public key: only meter keys get logins,
    so no meter can take the oracle's user name or anyone else's."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name!r} is not a meter key (a base58 public key)")
        self.name = name


def meter_username(meter: str) -> str:
    """The broker user name of ``meter``: its key in base58, as its topics spell it."""
    try:
        return str(Pubkey.from_string(meter))
    except ValueError:
        raise NotAMeterKey(meter) from None


def new_password() -> str:
    """A fresh meter password (32 URL-safe characters: the firmware keeps up to 64)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def password_hash(password: str, salt: bytes | None = None) -> str:
    """``password`` as Mosquitto 2's password file keeps it (``$7$``: PBKDF2-SHA512)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    encoded_salt = base64.b64encode(salt).decode()
    return f"$7${HASH_ITERATIONS}${encoded_salt}${base64.b64encode(digest).decode()}"


def set_login(password_file: Path, username: str, password: str) -> None:
    """Adds ``username``'s entry to ``password_file``, or replaces the one it has; every other
    entry is kept as it was. The file is replaced whole (a reload never reads half of it) and
    keeps its mode and owner (a new one gets ``PASSWORD_FILE_MODE``)."""
    entries = [line for line in _lines(password_file) if line.partition(":")[0] != username]
    entries.append(f"{username}:{password_hash(password)}")
    _replace(password_file, entries)


def remove_login(password_file: Path, username: str) -> bool:
    """Takes ``username``'s entry out of ``password_file``; whether it had one."""
    lines = _lines(password_file)
    kept = [line for line in lines if line.partition(":")[0] != username]
    if len(kept) == len(lines):
        return False
    _replace(password_file, kept)
    return True


def acl(topic_root: str, oracle_username: str) -> str:
    """Mosquitto's ``acl_file`` for one deployment: ``pattern`` lines hold for every user, with
    ``%u`` its user name; the oracle's own lines follow its ``user`` line. The market segment
    is ``+``: a meter's readings carry their market's tag, which the oracle checks."""
    meters = f"{topic_root}/+/meters"
    return "\n".join(
        [
            "# Each meter logs in as its own key: it publishes its readings and reads its",
            "# rejections, and nothing else.",
            f"pattern write {meters}/%u/readings",
            f"pattern read {meters}/%u/rejected",
            "",
            "# The oracle (each replica) reads all meters' readings and writes their rejections,",
            "# which its operators may read under its login.",
            f"user {oracle_username}",
            f"topic read {meters}/+/readings",
            f"topic readwrite {meters}/+/rejected",
            "",
        ]
    )


def _lines(password_file: Path) -> list[str]:
    if not password_file.exists():
        return []
    return [line for line in password_file.read_text().splitlines() if line.strip()]


def _replace(password_file: Path, lines: list[str]) -> None:
    existing = password_file.stat() if password_file.exists() else None
    descriptor, temporary = tempfile.mkstemp(dir=password_file.parent, prefix=".passwords-")
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write("".join(f"{line}\n" for line in lines))
            file.flush()
            os.fsync(file.fileno())
        if existing is None:
            os.chmod(temporary, PASSWORD_FILE_MODE)
        else:
            # The broker reads it as its own user (or group) once it dropped root.
            os.chmod(temporary, existing.st_mode & 0o777)
            os.chown(temporary, existing.st_uid, existing.st_gid)
        os.replace(temporary, password_file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
