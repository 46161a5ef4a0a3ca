//! Test policy: reads every field of the state through the SDK's views and refuses with all
//! of it as text, so the host can check that the columns and the views carry exactly the state
//! it built (`host/tests/policy_runtime.rs` renders the same text from its side; the 0.3.0
//! build of this policy, `testing/contract-0.3.0/echo_state.wasm`, and its 1.0.0 build in
//! `testing/contract-1.0.0` must read the same, less what later versions add).

mod echo;

pinot_policy_sdk::export_upgrade_policy!(echo::Echo);
