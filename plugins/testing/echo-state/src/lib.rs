//! Test policy: reads every field of the state through the SDK's views and refuses with all
//! of it as text, so the host can check that the 0.3.0 tables and the views carry exactly the
//! state it built (`host/tests/policy_runtime.rs` renders the same text from its side). The
//! same policy built against contract 0.2.0 is `echo-state-0.2`.

mod echo;
use echo::Echo;
use pinot_policy_sdk as sdk;

/// What `info()` says.
const NAME: &str = "echo-state";

sdk::upgrade::export!(Echo with_types_in sdk::upgrade);
