"""sbf-link: the link step that turns rustc's LLVM bitcode into an SBPF v0 Solana program.

rustc, for a target whose linker flavour is "bpf", hands the linker LLVM bitcode (the
crate's ``.rcgu.o`` files and the bitcode members of every ``.rlib``) instead of machine
code.  This package links that bitcode with Debian's LLVM 22 tools and writes the shared
object Solana's program loader accepts:

* :mod:`sbf_link.cli` parses the bpf-linker command line rustc passes;
* :mod:`sbf_link.pipeline` runs llvm-link, opt, the IR rewrites, the limit check and llc;
* :mod:`sbf_link.ir_rewrite` patches IR that LLVM 22's BPF backend cannot lower;
* :mod:`sbf_link.limits` explains, before llc does cryptically, what cannot be compiled;
* :mod:`sbf_link.elf` reads llc's BPF object and writes the SBPF v0 ``.so``.

Runtime dependencies: the Python 3.11 standard library and the LLVM 22 tools.
"""
