"""Measure a node's clock offset to the controller, from the controller.

Runs ``date +%s.%N`` on the node over the task's connection several times,
timing each call on the controller; the sample with the shortest round trip
gives the offset (node clock minus the round trip's midpoint) and its
uncertainty (half that round trip).
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("samples",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        samples = int(self._task.args.get("samples", 5))
        best = None
        for _ in range(max(samples, 1)):
            before = time.time()
            out = self._low_level_execute_command("date +%s.%N")
            after = time.time()
            if out.get("rc") != 0:
                result.update(failed=True, msg=f"cannot read the node's clock: {out.get('stderr', '')}")
                return result
            try:
                node = float(out["stdout"].strip().splitlines()[-1])
            except (ValueError, IndexError):
                result.update(failed=True, msg=f"unexpected clock reading {out.get('stdout')!r}")
                return result
            sample = (after - before, node - (before + after) / 2)
            if best is None or sample[0] < best[0]:
                best = sample
        result.update(
            changed=False,
            offset=round(best[1], 6),
            error=round(best[0] / 2, 6),
            round_trip=round(best[0], 6),
        )
        return result
