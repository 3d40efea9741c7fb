//! Lets the linker find qemu-virt.x.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo::rustc-link-search={dir}");
    println!("cargo::rerun-if-changed=qemu-virt.x");
}
