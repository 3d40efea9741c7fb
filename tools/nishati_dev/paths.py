"""Where the repository keeps what local development uses: the built program and the test keys."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_KEYS_DIR = REPO_ROOT / "tests" / "keys"
PROGRAM_SO = REPO_ROOT / "target" / "deploy" / "nishati.so"
PROGRAM_KEYPAIR = TEST_KEYS_DIR / "nishati-program.json"
PHONE_KEY_FILE = TEST_KEYS_DIR / "phone-encryption.key"
# The test installer: the stack, the demo and the sandbox approve it and register meters with it.
INSTALLER_KEYPAIR = TEST_KEYS_DIR / "installer.json"
# The web app's build (scripts/build-web.sh), which the local oracle serves under /.
WEB_DIST = REPO_ROOT / "web" / "dist"
