"""An upgrade policy in Python: the most cautious one. One pod of the whole cluster at a time,
in deploymentOrder, lowest ordinal first, and nothing while any pod is unavailable.

Built with componentize-py (see ../build.sh); it implements the same `upgrade-policy` world as
the Rust policies and runs under the same limits.
"""

import wit_world
from wit_world.imports import types, host
from componentize_py_types import Err


class WitWorld(wit_world.WitWorld):
    def info(self) -> types.Info:
        return types.Info(name="python-one-at-a-time", version="0.1.0", api_version="pinot:policy@0.1.0")

    def plan_upgrade(self, state: types.ClusterState) -> list[types.Action]:
        for pool in state.pools:
            for pod in pool.pods:
                if not pod.ready or pod.terminating:
                    return [types.Action_Wait(f"waiting for {pod.name} to become ready")]
        for role in state.deployment_order:
            for pool in sorted((p for p in state.pools if p.role == role), key=lambda p: p.name):
                for pod in sorted(pool.pods, key=lambda p: p.ordinal):
                    if pod.revision != pool.target_revision:
                        host.log(host.Level.INFO, f"restarting {pod.name}")
                        return [types.Action_RestartPod(pod.name)]
        return []
