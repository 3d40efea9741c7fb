# Shared helpers for the scripts in this folder (sourced, not run).

step() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if ((EUID == 0)); then "$@"; else sudo "$@"; fi
}

# Debian's toolchain for everything Rust: the rustup toolchain that may be on PATH is a different
# rustc, and mixing the two in one target directory fails with E0514.
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
DEBIAN_CARGO=/usr/bin/cargo
