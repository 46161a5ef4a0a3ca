//! Builds the policy plugins in `plugins/` for `wasm32-unknown-unknown` and turns each into a
//! component that imports nothing but the contract (no WASI), then tells the operator where the
//! components are, so `cargo build` on a fresh clone embeds the bundled defaults with no manual
//! step. One test module (`snoop`) is built for `wasm32-wasip2` instead: it must import WASI.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

/// What policies are built for.
const TARGET: &str = "wasm32-unknown-unknown";
/// What the test modules that must import WASI are built for.
const WASI_TARGET: &str = "wasm32-wasip2";
const WASI_MODULES: [&str; 1] = ["pinot-test-snoop"];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let plugins = manifest_dir.join("../plugins");
    let sdk = manifest_dir.join("../plugin-api");
    let contract_drafts = manifest_dir.join("../tests/contract");
    for dir in [&plugins, &sdk, &contract_drafts] {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let target_dir = out.join("plugins-target");
    ensure_target(TARGET);
    ensure_target(WASI_TARGET);
    cargo_build(&plugins, &target_dir, TARGET, &[]);
    let wasi_only: Vec<String> = WASI_MODULES.iter().flat_map(|m| ["-p".to_string(), m.to_string()]).collect();
    cargo_build(&plugins, &target_dir, WASI_TARGET, &wasi_only);

    let components = out.join("components");
    std::fs::create_dir_all(&components).unwrap();
    let core_dir = target_dir.join(TARGET).join("release");
    for entry in std::fs::read_dir(&core_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let component = componentize(&path);
            std::fs::write(components.join(path.file_name().unwrap()), component).unwrap();
        }
    }
    // The rust wasip2 target emits components already.
    for module in WASI_MODULES {
        let file = format!("{}.wasm", module.replace('-', "_"));
        std::fs::copy(target_dir.join(WASI_TARGET).join("release").join(&file), components.join(&file)).unwrap();
    }
    println!("cargo:rustc-env=PINOT_PLUGINS_WASM_DIR={}", components.display());
}

/// `cargo build --release --target TARGET` of the plugins' workspace.
fn cargo_build(plugins: &Path, target_dir: &Path, target: &str, args: &[String]) {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "--target", target, "--manifest-path"])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(args);
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
    assert!(status.success(), "building the policy plugins in {} for {target} failed", plugins.display());
}

/// A core module built with wit-bindgen (its world in a custom section) as a component.
fn componentize(core: &Path) -> Vec<u8> {
    let bytes = std::fs::read(core).unwrap();
    wit_component::ComponentEncoder::default()
        .module(&bytes)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("making {} a component: {e:#}", core.display()))
}

/// `rust-toolchain.toml` lists the target, but rustup adds it only when it installs the
/// toolchain; add it when an existing toolchain lacks it.
fn ensure_target(target: &str) {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot.is_some_and(|s| PathBuf::from(s).join("lib/rustlib").join(target).exists());
    if !installed {
        let status = Command::new("rustup").args(["target", "add", target]).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "the {target} target is missing and `rustup target add {target}` failed"
        );
    }
}
