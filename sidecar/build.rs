//! Link-time settings for the `sluice` executable only.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // Pack the executable's relative relocations (DT_RELR, glibc 2.36+,
        // which the runtime image has). A position-independent executable
        // carries one 24-byte entry per pointer to fix at start-up, and the
        // loader reads every one: 0.8 MiB of file pages held for the life of
        // the process. Packed, the table is a few kilobytes. Measured in
        // BENCHMARKS.md, "Idle memory: packed relocations".
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
