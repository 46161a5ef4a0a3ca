//! Test policy: `echo-state` built against contract 0.2.0 (flat records), so the host can check
//! that a 0.2.0 module still loads and reads exactly the state a 0.3.0 module reads.

#[path = "../../echo-state/src/echo.rs"]
mod echo;
use echo::Echo;
use pinot_policy_sdk_0_2 as sdk;

/// What `info()` says.
const NAME: &str = "echo-state-0.2";

sdk::upgrade::export!(Echo with_types_in sdk::upgrade);
