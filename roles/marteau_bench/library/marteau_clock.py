#!/usr/bin/python
"""The documentation of `marteau_clock`, an action plugin (`action_plugins/marteau_clock.py`).

It runs on the controller: there is no module code to send to the node, only
this file for `ansible-doc`, as ansible-core does for its own action plugins."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: marteau_clock
short_description: Measure a node's clock offset to the controller
description:
  - An action plugin, run on the controller. It runs C(date +%s.%N) on
    the node over the task's connection O(samples) times, timing each call on
    the controller.
  - The sample with the shortest round trip gives the offset (the node's clock
    minus the round trip's midpoint) and its uncertainty (half that round trip).
  - The node needs only a C(date) that knows C(%N) (GNU coreutils); no Python.
options:
  samples:
    description: How many round trips to time; the shortest one wins (at least 1).
    type: int
    default: 5
"""
EXAMPLES = r"""
- name: Measure the node's clock offset to the controller
  marteau_clock:
    samples: 5
  register: clock

- name: Refuse a node whose clock is more than 0.5 s off, beyond the measurement's uncertainty
  ansible.builtin.assert:
    that: (clock.offset | float | abs) - (clock.error | float) <= 0.5
    fail_msg: "clock of {{ inventory_hostname }} is {{ clock.offset }}s off the controller's"
"""
RETURN = r"""
offset:
  description: The node's clock minus the controller's, in seconds (positive when the node is ahead).
  returned: success
  type: float
error:
  description: The offset's uncertainty in seconds (half the shortest round trip).
  returned: success
  type: float
round_trip:
  description: The shortest round trip, in seconds.
  returned: success
  type: float
msg:
  description: Why the node's clock could not be read.
  returned: failed
  type: str
"""
