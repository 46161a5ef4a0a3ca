//! Bindings of the previous contract, `pinot:policy@0.1.0` (nested records with a string per
//! name). The hostile test modules are built against it, so the tests also prove that the
//! operator keeps loading modules of an older contract version.

/// The contract version of these bindings.
pub const API_VERSION: &str = "pinot:policy@0.1.0";

/// `upgrade-policy` of 0.1.0.
pub mod upgrade {
    wit_bindgen::generate!({
        world: "upgrade-policy",
        path: "../../../plugin-api/wit/0.1.0",
        pub_export_macro: true,
        export_macro_name: "export",
    });
}
