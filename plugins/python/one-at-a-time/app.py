"""An upgrade policy in Python: the most cautious one. One pod of the whole cluster at a time,
in deploymentOrder, lowest ordinal first, and nothing while any pod is unavailable.

Built with componentize-py (see ../build.sh) against `pinot:policy@1.0.0`, the same
`upgrade-policy` world as the Rust policies, with no SDK: the state comes as tables of typed
columns (`state.pools()`, `state.pods()`), a yes/no field as the rows it holds for
(`pods.ready`), strings as numbers into `state.read_all_text()` (or one at a time with
`state.read_text(id)`), and each action is a function call.
"""

from wit_world import exports
from wit_world.imports import log, state, types, upgrade_actions


class Upgrade(exports.Upgrade):
    def info(self) -> types.PolicyInfo:
        return types.PolicyInfo(name="python-one-at-a-time", version="0.2.0")

    def plan(self) -> None:
        text = state.read_text
        pools, pods = state.pools(), state.pods()
        ready, terminating = set(pods.ready), set(pods.terminating)
        for row in range(len(pods.name)):
            if row not in ready or row in terminating:
                upgrade_actions.wait(f"waiting for {text(pods.name[row])} to become ready")
                return
        for role in state.cluster().deployment_order:
            in_role = sorted((p for p in range(len(pools.name)) if pools.role[p] == role), key=lambda p: text(pools.name[p]))
            for pool in in_role:
                target = text(pools.target_revision[pool])
                mine = sorted((r for r in range(len(pods.name)) if pods.pool[r] == pool), key=lambda r: pods.ordinal[r])
                for row in mine:
                    if text(pods.revision[row]) != target:
                        name = text(pods.name[row])
                        log.log(types.Level.INFO, f"restarting {name}")
                        upgrade_actions.restart_pod(name)
                        return
