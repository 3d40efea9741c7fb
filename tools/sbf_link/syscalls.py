"""The Solana syscalls: the only undefined symbols an SBPF program may call.

An SBPF v0 program calls a syscall with ``call -1`` plus a dynamic relocation naming it;
the loader replaces the name with its murmur3 hash and resolves that against the runtime's
registry.  A name not in the registry fails the deployment (``UnresolvedSymbol``), so the
linker rejects it up front with the symbol's name instead.

:data:`KNOWN` is the registry of agave's ``create_program_runtime_environment_v1``
(agave 2.x-3.x; some entries are feature-gated on a given cluster).
"""

from __future__ import annotations

KNOWN: frozenset[str] = frozenset(
    {
        "abort",
        "sol_panic_",
        "sol_log_",
        "sol_log_64_",
        "sol_log_pubkey",
        "sol_log_compute_units_",
        "sol_log_data",
        "sol_create_program_address",
        "sol_try_find_program_address",
        "sol_sha256",
        "sol_keccak256",
        "sol_secp256k1_recover",
        "sol_blake3",
        "sol_poseidon",
        "sol_curve_validate_point",
        "sol_curve_group_op",
        "sol_curve_multiscalar_mul",
        "sol_curve_decompress",
        "sol_curve_pairing_map",
        "sol_alt_bn128_group_op",
        "sol_alt_bn128_compression",
        "sol_big_mod_exp",
        "sol_get_clock_sysvar",
        "sol_get_epoch_schedule_sysvar",
        "sol_get_fees_sysvar",
        "sol_get_rent_sysvar",
        "sol_get_last_restart_slot",
        "sol_get_epoch_rewards_sysvar",
        "sol_get_sysvar",
        "sol_get_epoch_stake",
        "sol_memcpy_",
        "sol_memmove_",
        "sol_memset_",
        "sol_memcmp_",
        "sol_get_processed_sibling_instruction",
        "sol_get_stack_height",
        "sol_set_return_data",
        "sol_get_return_data",
        "sol_invoke_signed_c",
        "sol_invoke_signed_rust",
        "sol_alloc_free_",
        "sol_remaining_compute_units",
    }
)

# LLVM >= 21 lowers llvm.trap (Rust's core::intrinsics::abort) and, with the BPF default
# TrapUnreachable, every `unreachable` to a call of the kernel kfunc __bpf_trap.  Solana's
# equivalent, which halts the program with an error, is the `abort` syscall.
ALIASES: dict[str, str] = {"__bpf_trap": "abort"}


def canonical(name: str) -> str:
    """The syscall an undefined symbol stands for (``__bpf_trap`` is ``abort``)."""
    return ALIASES.get(name, name)


def is_syscall(name: str) -> bool:
    """Whether a call to the undefined symbol ``name`` can be resolved by the loader."""
    return canonical(name) in KNOWN
