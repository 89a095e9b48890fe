#!/usr/bin/python
"""Marteau's node lock: one JSON file, changed only under flock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: marteau_lock
short_description: Take, release or read Marteau's lock on a load-test node
description:
  - The lock is a JSON file (job id, owner, taken and expiry times).
  - Every check-and-write happens while holding an exclusive C(flock) on a
    companion file, so two controllers racing for a node never both win.
  - An expired lock is taken over, with a warning naming its former holder.
options:
  path:
    description: Lock file on the node; C(~) is expanded.
    type: path
    default: ~/.marteau/lock.json
  state:
    description: C(present) takes the lock, C(absent) releases it, C(query) reads it.
    type: str
    choices: [present, absent, query]
    default: present
  job:
    description: The job id that takes or releases the lock.
    type: str
  owner:
    description: Who runs the job (user@host), shown to anyone who finds the node taken.
    type: str
    default: ""
  ttl:
    description: Seconds until the lock expires if its holder never releases it.
    type: int
    default: 3600
  force:
    description: With C(state=absent), release whoever holds the lock.
    type: bool
    default: false
"""
EXAMPLES = r"""
- name: Take the lock for one hour
  marteau_lock:
    job: 20260101-120000-4242
    owner: alice@laptop
    ttl: 3600
  register: lock

- name: Say who holds the node when it was not free
  ansible.builtin.debug:
    msg: "held by job {{ lock.holder.job }} of {{ lock.holder.owner }}"
  when: not lock.acquired

- name: Read the lock without changing it
  marteau_lock:
    state: query
  register: lock_status

- name: Release the job's lock (from an always block, with no when)
  marteau_lock:
    state: absent
    job: 20260101-120000-4242

- name: Release the lock whoever holds it
  marteau_lock:
    state: absent
    force: true
"""

RETURN = r"""
acquired:
  description: True when this job holds the lock after the call (O(state=present)).
  returned: always
  type: bool
released:
  description: True when the call removed the lock (O(state=absent)).
  returned: always
  type: bool
holder:
  description: The lock's content after the call (C(job), C(owner), C(taken), C(expires), C(host), and with
    O(state=query) C(expired)), or the blocking holder; empty when free.
  returned: always
  type: dict
path:
  description: The lock file, C(~) expanded.
  returned: success
  type: str
taken_over:
  description: The expired lock this call took over (its holder's job, owner and times).
  returned: when an expired lock of another job was taken over
  type: dict
was:
  description: The lock the call removed.
  returned: when released
  type: dict
job_users:
  description: When acquired, the Unix users that other jobs left on the node
    (recorded in C(job-users) beside the lock file by marteau_node), to remove.
  returned: when acquired
  type: list
  elements: str
error:
  description: Why the lock file could not be read or written (the call then reports the node as not
    acquired instead of failing, so that a lock play goes on with the next node).
  returned: on an unexpected error
  type: str
"""

import fcntl
import json
import os
import time

from ansible.module_utils.basic import AnsibleModule


def read(path):
    try:
        with open(path) as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write(path, data):
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def left_job_users(directory, job):
    """The job users recorded beside the lock file for jobs other than `job`."""
    registry = os.path.join(directory, "job-users")
    try:
        names = sorted(os.listdir(registry))
    except OSError:
        return []
    left = []
    for name in names:
        try:
            with open(os.path.join(registry, name)) as handle:
                if handle.read() != job:
                    left.append(name)
        except OSError:
            continue
    return left


def main():
    module = make_module()
    try:
        run(module)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: a node we cannot lock is skipped
        import traceback

        module.exit_json(
            changed=False,
            acquired=False,
            released=False,
            holder={},
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
        )


def make_module():
    return AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": "~/.marteau/lock.json"},
            "state": {"type": "str", "choices": ["present", "absent", "query"], "default": "present"},
            "job": {"type": "str"},
            "owner": {"type": "str", "default": ""},
            "ttl": {"type": "int", "default": 3600},
            "force": {"type": "bool", "default": False},
        },
        required_if=[("state", "present", ["job"])],
        supports_check_mode=True,
    )


def run(module):
    params = module.params
    path = os.path.expanduser(params["path"])
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    now = time.time()
    result = {"changed": False, "acquired": False, "released": False, "holder": {}, "path": path}
    with open(path + ".flock", "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        current = read(path)
        expired = bool(current) and float(current.get("expires", 0)) <= now
        if current:
            current["expired"] = expired
        state = params["state"]
        if state == "query":
            result["holder"] = current
        elif state == "present":
            mine = current.get("job") == params["job"]
            if current and not mine and not expired:
                result["holder"] = current
            else:
                if current and not mine:
                    module.warn(
                        "took over the expired lock of job {} (owner {}, expired {:.0f}s ago)".format(
                            current.get("job"), current.get("owner"), now - float(current["expires"])
                        )
                    )
                    result["taken_over"] = current
                lock = {
                    "job": params["job"],
                    "owner": params["owner"],
                    "taken": float(current["taken"]) if mine else now,
                    "expires": now + params["ttl"],
                    "host": os.uname().nodename,
                }
                if not module.check_mode:
                    write(path, lock)
                result.update(acquired=True, changed=not mine, holder=lock)
                result["job_users"] = left_job_users(directory, params["job"])
        else:
            mine = bool(current) and current.get("job") == params["job"]
            if current and (mine or params["force"] or expired):
                if not module.check_mode:
                    os.remove(path)
                result.update(released=True, changed=True, holder={})
                result["was"] = current
            else:
                result["holder"] = current
    module.exit_json(**result)


if __name__ == "__main__":
    main()
