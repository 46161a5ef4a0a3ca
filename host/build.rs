//! Builds the policy plugins in `plugins/` for `wasm32-wasip2` and tells the operator where
//! the components are, so `cargo build` on a fresh clone embeds the bundled defaults with no
//! manual step.

use std::{env, path::PathBuf, process::Command};

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let sdk = manifest_dir.join("../plugin-api");
    for dir in [&plugins, &sdk] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let target_dir = PathBuf::from(env::var("OUT_DIR").unwrap()).join("plugins-target");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    ensure_target();
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // Host build settings must not leak into the guest build.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    for (key, _) in env::vars() {
        if key.starts_with("CARGO_FEATURE_") || key.starts_with("CARGO_CFG_") {
            cmd.env_remove(key);
        }
    }
    let status = cmd.status().expect("running cargo to build the policy plugins");
    assert!(status.success(), "building the policy plugins in {} for {TARGET} failed", plugins.display());
    let wasm_dir = target_dir.join(TARGET).join("release");
    println!("cargo:rustc-env=PINOT_PLUGINS_WASM_DIR={}", wasm_dir.display());
}

/// `rust-toolchain.toml` lists the target, but rustup adds it only when it installs the
/// toolchain; add it when an existing toolchain lacks it.
fn ensure_target() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot.is_some_and(|s| PathBuf::from(s).join("lib/rustlib").join(TARGET).exists());
    if !installed {
        let status = Command::new("rustup").args(["target", "add", TARGET]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {TARGET} target is missing and `rustup target add {TARGET}` failed"
        );
    }
}
