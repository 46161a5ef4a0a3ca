//! Policies built for `wasm32-unknown-unknown` as components: wit-bindgen leaves the module's
//! WIT world in a custom section, from which the component's imports and exports are made (what
//! `wasm-tools component new` does). No WASI adapter is involved, so the component imports
//! nothing but the contract.

/// The component of a core module that wit-bindgen built; an error says why it is not one
/// (e.g. a module built for `wasm32-wasip1` that imports WASI preview 1).
pub fn from_core_module(core: &[u8]) -> Result<Vec<u8>, String> {
    if wasmparser_is_component(core) {
        return Err("it is a component already".into());
    }
    wit_component::ComponentEncoder::default()
        .module(core)
        .and_then(|e| e.validate(true).encode())
        .map_err(|e| format!("not a policy module built with wit-bindgen for wasm32-unknown-unknown: {e:#}"))
}

/// Whether the bytes are a component (layer 1) rather than a core module.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}
