#!/usr/bin/python
"""A throwaway Unix user per job: created before the bench, removed with all it left."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: marteau_job_user
short_description: Create, remove or probe the Unix user a Marteau job runs as
description:
  - Runs as the node's user (the admin of Marteau's files) and does the few
    privileged steps through C(sudo -n) with fixed argument lists, so a node
    without passwordless sudo still runs jobs, as the node's user, and says
    that they are not isolated.
  - The job user's name is C(mj) and 12 hex digits of a hash of the node
    user's uid and the job id (safe, bounded and the same for every task of
    the job). Each job user is recorded in C(job-users) under O(dir) (one file per user,
    holding its job id) before it exists, so an interrupted job's user is
    found and removed by the next job that takes the node.
  - C(present) also makes C(<job>/barrier), the one directory the node's user
    and the job's user both write (the node user's, the job user's group,
    mode 0770; 0700 without a job user), for the start barrier's files (the
    bench's C(.ready) marker, the controller's start instant).
  - Removal kills every process of the user, deletes its files in C(/tmp),
    C(/var/tmp) and C(/dev/shm), gives the job directory's files back to the
    node's user, and deletes the user and its home.
options:
  state:
    description:
      - C(probe) says whether jobs can be isolated, C(present) creates the job's user.
      - C(query) says who the job's user is and which job users are recorded, so
        that their egress firewall is removed before them (on cancel, at a forced unlock).
      - C(absent) removes job users.
    type: str
    choices: [probe, present, query, absent]
    default: probe
  job:
    description: >-
      The job id. With C(present) the job whose user is created, with C(query)
      the job whose user is reported, with C(absent) the job whose user is removed.
    type: str
  keep:
    description: >-
      With C(absent) and no O(job), remove every recorded job user except this
      job's (empty, every one).
    type: str
    default: ""
  dir:
    description: Marteau's directory on the node; C(~) is expanded with C($HOME).
    type: str
    default: ~/.marteau
  prepare:
    description: >-
      With C(probe), create O(dir) and its C(jobs) and, when jobs are isolated,
      let job users pass through them (search permission only).
    type: bool
    default: false
  stamp:
    description: With C(probe), a file whose existence is reported; C(~) is expanded.
    type: str
    default: ""
"""
EXAMPLES = r"""
- name: Check the node, create Marteau's directory and say whether jobs are isolated
  marteau_job_user:
    state: probe
    prepare: true
    stamp: ~/.marteau/venv/.wheelhouse-SHA256
  register: node_state

- name: Create the job's Unix user (empty user and uid -1 without passwordless sudo)
  marteau_job_user:
    state: present
    job: 20260101-120000-4242
  register: job_user

- name: Find the job's user and every job user recorded on the node
  marteau_job_user:
    state: query
    job: 20260101-120000-4242
  register: found

- name: Remove the job's user, its processes and its files
  marteau_job_user:
    state: absent
    job: 20260101-120000-4242

- name: Remove every recorded job user but this job's
  marteau_job_user:
    state: absent
    keep: 20260101-120000-4242
"""

RETURN = r"""
dir:
  description: O(dir), expanded.
  returned: always
  type: str
isolated:
  description: True when jobs run as their own user on this node.
  returned: O(state=probe) or O(state=present)
  type: bool
reason:
  description: Why jobs are not isolated (empty when they are).
  returned: O(state=probe) or O(state=present)
  type: str
stamp_exists:
  description: Whether O(stamp) exists.
  returned: O(state=probe)
  type: bool
user:
  description: The job user's name (empty when not isolated, or with O(state=query) when the job has
    no user on the node).
  returned: O(state=present) or O(state=query)
  type: str
uid:
  description: Its uid (-1 when there is none).
  returned: O(state=present) or O(state=query)
  type: int
gid:
  description: Its group id (-1 when there is none).
  returned: O(state=present) or O(state=query)
  type: int
home:
  description: Its home, C(<job>/home) (empty when not isolated).
  returned: O(state=present)
  type: str
shared:
  description: The job's C(barrier) directory.
  returned: O(state=present)
  type: str
recorded:
  description: The job users recorded on the node (every job's).
  returned: O(state=query)
  type: list
  elements: str
removed:
  description: The users removed.
  returned: O(state=absent)
  type: list
  elements: str
"""

import hashlib
import os
import pwd
import re
import shutil
import subprocess
import sys

from ansible.module_utils.basic import AnsibleModule

NAME = re.compile(r"^mj[0-9a-f]{12}$")
TOOLS = ("sudo", "setpriv", "prlimit", "useradd", "userdel")
SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/bin", "/bin"])

# Runs as root (sudo -n python3 -c ROOT ACTION ARGS...): the same fixed code for every
# job; names and paths arrive as arguments, and the name is checked again here.
ROOT = r"""
import os, pwd, re, shutil, signal, subprocess, sys, time
action, name = sys.argv[1], sys.argv[2]
if not re.match(r"^mj[0-9a-f]{12}$", name):
    sys.exit("bad job user name")

def uid_of(name):
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None

def processes(uid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as handle:
                    uids = next(l for l in handle if l.startswith("Uid:")).split()[1:]
            except (OSError, StopIteration):
                continue
            if str(uid) in uids:
                found.append(int(entry))
    return found

def owned_tree(top, uid, keep, spare=None):
    # bottom-up, never following a link: remove (or, with keep, chown back) uid's
    # entries, none inside spare (the job directory may lie under /tmp)
    for directory, dirs, files in os.walk(top, topdown=False):
        if spare and (directory + "/").startswith(spare + "/"):
            continue
        for entry in files + dirs:
            path = os.path.join(directory, entry)
            if path == spare:
                continue
            try:
                stat = os.lstat(path)
            except OSError:
                continue
            if stat.st_uid != uid:
                continue
            linked = not os.path.isdir(path) and stat.st_nlink > 1
            try:
                if keep is not None and not linked:
                    os.lchown(path, *keep)
                elif os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass

if action == "create":
    home, tree, shared = sys.argv[3], sys.argv[4], sys.argv[5]
    if uid_of(name) is None:
        subprocess.run(["useradd", "--create-home", "--home-dir", home, "--shell",
                        "/usr/sbin/nologin", "--user-group", "--comment", "Marteau job",
                        name], check=True, capture_output=True)
    entry = pwd.getpwnam(name)
    for directory, dirs, files in os.walk(tree):
        for path in [directory] + [os.path.join(directory, f) for f in files]:
            os.lchown(path, entry.pw_uid, entry.pw_gid)
    if os.path.isdir(shared) and not os.path.islink(shared):  # the node user's, the job's group
        os.lchown(shared, -1, entry.pw_gid)
        os.chmod(shared, 0o770)
    print(entry.pw_uid, entry.pw_gid)
else:
    admin, tree = (int(sys.argv[3]), int(sys.argv[4])), sys.argv[5]
    uid = uid_of(name)
    if uid is None:
        sys.exit(0)
    deadline = time.monotonic() + 10
    while (pids := processes(uid)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
    home = pwd.getpwnam(name).pw_dir
    if os.path.isdir(tree):  # the results first: given back, never swept
        owned_tree(tree, uid, admin)
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        owned_tree(top, uid, None, os.path.realpath(tree))
    subprocess.run(["userdel", name], check=True, capture_output=True)
    if home.startswith(tree + "/"):
        shutil.rmtree(home, ignore_errors=True)
"""


def job_user_name(job):
    """The job user of `job` for the node user running this module."""
    return "mj" + hashlib.sha256(f"{os.getuid()}:{job}".encode()).hexdigest()[:12]


def root(action, *args):
    return subprocess.run(
        ["sudo", "-n", sys.executable, "-c", ROOT, action, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def why_not_isolated():
    """Empty when this node can run jobs as their own users, else the reason."""
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=SBIN)]
    if missing:
        return "missing " + ", ".join(missing)
    try:
        check = subprocess.run(
            ["sudo", "-n", "true"],
            capture_output=True,
            text=True,
            timeout=20,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return "sudo -n true did not answer"
    if check.returncode != 0:
        lines = (check.stderr or check.stdout).strip().splitlines()
        return "no passwordless sudo" + (f" ({lines[-1]})" if lines else "")
    return ""


def prepare(directory, isolated):
    """Marteau's directory and its `jobs`, private to the node user; when jobs are
    isolated, job users may pass through them and the node user's home to the shared
    virtualenv and their job directory (search permission only: no listing, no
    writing). True when something changed."""
    changed = False
    for path in (directory, os.path.join(directory, "jobs")):
        if not os.path.isdir(path):
            os.makedirs(path, mode=0o700)
            changed = True
    if isolated:
        for path in (os.path.dirname(directory), directory, os.path.join(directory, "jobs")):
            mode = os.stat(path).st_mode & 0o7777
            if mode & 0o001 == 0:
                os.chmod(path, mode | 0o001)
                changed = True
    return changed


def registered(registry):
    try:
        names = sorted(os.listdir(registry))
    except FileNotFoundError:
        return {}
    jobs = {}
    for name in names:
        if NAME.match(name):
            with open(os.path.join(registry, name)) as handle:
                jobs[name] = handle.read()
    return jobs


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["probe", "present", "query", "absent"], "default": "probe"},
            "job": {"type": "str"},
            "keep": {"type": "str", "default": ""},
            "dir": {"type": "str", "default": "~/.marteau"},
            "stamp": {"type": "str", "default": ""},
            "prepare": {"type": "bool", "default": False},
        },
        required_if=[("state", "present", ["job"])],
    )
    params = module.params
    directory = os.path.expanduser(params["dir"])
    registry = os.path.join(directory, "job-users")
    result = {"changed": False, "dir": directory}
    if params["state"] == "query":
        result["recorded"] = sorted(registered(registry))
        try:
            name = job_user_name(params["job"]) if params["job"] else ""
            entry = pwd.getpwnam(name)
        except KeyError:
            module.exit_json(user="", uid=-1, gid=-1, **result)
        module.exit_json(user=name, uid=entry.pw_uid, gid=entry.pw_gid, **result)
    if params["state"] == "absent":
        jobs = registered(registry)
        if params["job"] is not None:
            doomed = [job_user_name(params["job"])]
        else:
            doomed = [name for name, job in jobs.items() if job != params["keep"]]
        removed = []
        for name in doomed:
            if name not in jobs:
                continue
            tree = os.path.join(directory, "jobs", jobs[name])
            done = root("remove", name, str(os.getuid()), str(os.getgid()), tree)
            if done.returncode != 0:
                module.fail_json(msg=f"cannot remove job user {name}: {done.stderr.strip()}")
            os.unlink(os.path.join(registry, name))
            removed.append(name)
        result["changed"] = bool(removed)
        module.exit_json(removed=removed, **result)
    reason = why_not_isolated()
    result.update(isolated=not reason, reason=reason)
    if params["state"] == "probe":
        result["changed"] = params["prepare"] and prepare(directory, not reason)
        stamp = os.path.expanduser(params["stamp"])
        result["stamp_exists"] = bool(stamp) and os.path.exists(stamp)
        module.exit_json(**result)
    job_dir = os.path.join(directory, "jobs", params["job"])
    shared = os.path.join(job_dir, "barrier")
    os.makedirs(shared, mode=0o700, exist_ok=True)
    result.update(changed=True, shared=shared)
    if reason:
        module.exit_json(user="", uid=-1, gid=-1, home="", **result)
    name = job_user_name(params["job"])
    os.makedirs(registry, mode=0o700, exist_ok=True)
    with open(os.path.join(registry, name), "w") as handle:  # before the user exists
        handle.write(params["job"])
    home = os.path.join(job_dir, "home")
    made = root("create", name, home, os.path.join(job_dir, "test"), shared)
    if made.returncode != 0:
        module.fail_json(msg=f"cannot create job user {name}: {made.stderr.strip()}")
    uid, gid = (int(n) for n in made.stdout.split())
    module.exit_json(user=name, uid=uid, gid=gid, home=home, **result)


if __name__ == "__main__":
    main()
