#!/usr/bin/python
"""async_status for Marteau's bench, plus the bench's live progress."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: marteau_bench_status
short_description: Poll a bench started with async, and read its progress
description:
  - Reads the async job file like C(async_status) and, while the bench runs,
    the last progress line of its log (cycle, users, tests, requests/s), so
    that a controller can show each node's progress at every poll.
options:
  jid:
    description: The async job id returned by the task that started the bench.
    type: str
    required: true
  log:
    description: The bench's console log on the node.
    type: path
    required: true
  async_dir:
    description: Ansible's async directory on the node.
    type: path
    default: ~/.ansible_async
  start_file:
    description:
      - The bench's C(--start-file). Its C(.ready) marker tells that the bench is
        armed (test imported, hooks run, users built) and waits for its start instant.
    type: path
  start:
    description:
      - Hand the bench its start instant (epoch seconds, on the node's clock)
        by writing it to O(start_file) whole (a rename). Needs O(start_file).
    type: float
"""
EXAMPLES = r"""
- name: Start the bench without waiting for it
  ansible.builtin.shell:
    cmd: exec marteau bench loadtest.py Simple.test_simple --start-file ../barrier/start > ../bench.log 2>&1
    chdir: ~/.marteau/jobs/JOB/test
  async: 3700
  poll: 0
  register: bench

- name: Wait until the bench is armed
  marteau_bench_status:
    jid: "{{ bench.ansible_job_id }}"
    log: ~/.marteau/jobs/JOB/bench.log
    start_file: ~/.marteau/jobs/JOB/barrier/start
  register: armed
  until: armed.armed or armed.finished == 1
  retries: 1200
  delay: 0.25

- name: Hand it its start instant (epoch seconds on the node's clock)
  marteau_bench_status:
    jid: "{{ bench.ansible_job_id }}"
    log: ~/.marteau/jobs/JOB/bench.log
    start_file: ~/.marteau/jobs/JOB/barrier/start
    start: "{{ now().timestamp() + 2 }}"

- name: Poll it until it ends, with its progress at every poll
  marteau_bench_status:
    jid: "{{ bench.ansible_job_id }}"
    log: ~/.marteau/jobs/JOB/bench.log
  register: status
  until: status.finished == 1
  retries: 3700
  delay: 1
"""

RETURN = r"""
ansible_job_id:
  description: The async job id polled (O(jid)).
  returned: always
  type: str
started:
  description: Always 1, as C(async_status) says.
  returned: always
  type: int
finished:
  description: 1 when the bench has ended, else 0.
  returned: always
  type: int
rc:
  description: The bench command's exit code (-1 when the async wrapper gave none).
  returned: when finished
  type: int
bench_error:
  description: The async wrapper's own error message, when the command could not be run.
  returned: when the async wrapper failed
  type: str
armed:
  description: Whether the bench is armed (its C(.ready) marker exists).
  returned: with O(start_file)
  type: bool
progress:
  description: >-
    The last progress line, parsed (cycle, users, cycle_users, phase, ok, failures, errors, rps,
    and from a bench that prints them responses and the p50, p95 and p99 response times in
    seconds; None otherwise).
  returned: when the log holds a progress line
  type: dict
lines:
  description: >-
    The last progress lines (the bench prints one a second) and the last one of
    every cycle still in the log's tail (from its C(Cycle result) line: the
    final counts, phase C(done)), parsed as RV(progress), each with C(at),
    its end offset in the log: a controller shows each line once, so no
    second's figures are lost between two polls.
  returned: always
  type: list
  elements: dict
log_xml:
  description: The result file the bench announced with C(Log xml:).
  returned: when the bench announced one
  type: str
fuse:
  description: "The line the bench printed when its safety fuse stopped it (C(safety fuse: ...))."
  returned: when the fuse stopped the bench
  type: str
last_line:
  description: The log's last line (empty when the log is empty or absent).
  returned: always
  type: str
msg:
  description: Why the bench failed (it ended without results), with the last lines of its log.
  returned: failed
  type: str
"""

import json
import os
import re

from ansible.module_utils.basic import AnsibleModule

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RECENT = 10  # progress lines returned besides each cycle's last: poll gaps up to 10 s lose nothing
TAIL_LINES = 15  # log lines quoted when the bench failed
PROGRESS = re.compile(
    r"cycle #(?P<cycle>\d+)\s+users (?P<users>\d+)/(?P<cycle_users>\d+)\s+(?P<phase>.*?)\s+"
    r"tests (?P<ok>\d+) ok, (?P<failures>\d+) failures, (?P<errors>\d+) errors\s+(?P<rps>[\d.]+) req/s"
    r"(?:\s+(?P<responses>\d+) responses)?"
    r"(?:\s+p50 (?P<p50>[\d.]+) ms)?(?:\s+p95 (?P<p95>[\d.]+) ms)?(?:\s+p99 (?P<p99>[\d.]+) ms)?"
)
QUANTILES = ("p50", "p95", "p99")  # in the line in milliseconds, returned in seconds
# The cycle's final counts: its last progress line may be a second older.
CYCLE_RESULT = re.compile(
    r"\* Cycle result: \S+, (?P<ok>\d+) success, (?P<failures>\d+) failure, (?P<errors>\d+) errors"
)


def tail(path, size=16384, whole=False):
    """[(end offset, text)] of the lines in the last `size` bytes of the log: the
    complete ones, and with `whole` (the bench ended) an unterminated last one too."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            end = handle.tell()
            start = max(0, end - size)
            handle.seek(start)
            data = handle.read(end - start)
    except OSError:
        return []
    lines, offset = [], start
    parts = data.split(b"\n")
    if not whole:
        parts[-1] = b""  # being written: read at the next poll
    for raw in parts:
        offset += len(raw) + 1
        # a terminal's rewritten line keeps its last state
        text = ANSI.sub("", raw.decode("utf-8", "replace")).split("\r")[-1].strip()
        if text:
            lines.append((min(offset, end), text))
    if start > 0 and lines:
        lines = lines[1:]  # the first one is cut
    return lines


def parse_progress(text):
    match = PROGRESS.search(text)
    if match is None:
        return None
    progress = match.groupdict()
    for key in ("cycle", "users", "cycle_users", "ok", "failures", "errors"):
        progress[key] = int(progress[key])
    progress["rps"] = float(progress["rps"])
    if progress["responses"] is not None:
        progress["responses"] = int(progress["responses"])
    for key in QUANTILES:
        if progress[key] is not None:
            progress[key] = float(progress[key]) / 1000
    return progress


def progress_lines(lines):
    """The last RECENT progress lines and the last line of each cycle, in log order.
    A cycle's result line becomes its last progress line, with the final counts
    (and the users and req/s of the line before it)."""
    found = []
    for at, text in lines:
        progress = parse_progress(text)
        result = CYCLE_RESULT.search(text) if progress is None else None
        if result is not None and found and found[-1]["phase"] != "done":
            progress = dict(found[-1], phase="done")
            progress.update({key: int(value) for key, value in result.groupdict().items()})
        if progress is not None:
            progress["at"] = at
            found.append(progress)
    last_of_cycle = {item["cycle"]: item for item in found}
    keep = {id(item) for item in found[-RECENT:]} | {id(item) for item in last_of_cycle.values()}
    return [item for item in found if id(item) in keep]


def hand_start(path, start):
    """Write the start instant whole: the bench never reads half a number. Readable
    by all: the bench may run as the job's own user, whatever the umask here."""
    temporary = path + ".tmp"
    with open(temporary, "w") as handle:
        handle.write("%.3f\n" % start)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def main():
    module = AnsibleModule(
        argument_spec={
            "jid": {"type": "str", "required": True},
            "log": {"type": "path", "required": True},
            "async_dir": {"type": "path", "default": "~/.ansible_async"},
            "start_file": {"type": "path"},
            "start": {"type": "float"},
        },
        required_by={"start": "start_file"},
        supports_check_mode=True,
    )
    jid = module.params["jid"]
    job_file = os.path.join(os.path.expanduser(module.params["async_dir"]), jid)
    result = {"changed": False, "ansible_job_id": jid, "finished": 0, "started": 1}
    try:
        with open(job_file) as handle:
            data = json.loads(handle.read() or "{}")
    except FileNotFoundError:
        module.fail_json(msg=f"no async job {jid} on this node", **result)
    except ValueError:
        data = {}
    if data and not data.get("started"):
        result["finished"] = 1
        result["rc"] = data.get("rc", -1)
        if data.get("failed") and data.get("msg"):
            result["bench_error"] = data["msg"]
    elif data.get("finished"):
        result["finished"] = 1
        result["rc"] = data.get("rc", -1)
    start_file = module.params["start_file"]
    if start_file:
        result["armed"] = os.path.exists(start_file + ".ready")
        if module.params["start"] is not None and result["armed"] and not module.check_mode:
            hand_start(start_file, module.params["start"])
            result["changed"] = True
    numbered = tail(module.params["log"], whole=result["finished"] == 1)
    lines = [text for _, text in numbered]
    result["lines"] = progress_lines(numbered)
    if result["lines"]:
        result["progress"] = {k: v for k, v in result["lines"][-1].items() if k != "at"}
    for line in reversed(lines):
        if line.startswith("Log xml:"):
            result["log_xml"] = line.split(":", 1)[1].strip()
            break
    for line in reversed(lines):
        if line.startswith("safety fuse:"):
            result["fuse"] = line
            break
    result["last_line"] = lines[-1] if lines else ""
    # A bench that wrote its results did its job whatever its status (1 with
    # failures, 255 with errors, as FunkLoad): say so, or Ansible fails the task
    # on `rc` and the results are never collected. Without results it fails.
    if result.get("rc") not in (None, 0) and "log_xml" not in result:
        said = "\n".join(lines[-TAIL_LINES:]) or "(the log is empty)"
        why = f"the bench exited {result['rc']} without results"
        if result["rc"] == -1:  # no exit code: the async wrapper's own failure
            why = result.get("bench_error") or "the bench ended without an exit code or results"
        module.fail_json(msg=f"{why}; the last lines of {module.params['log']}:\n{said}", **result)
    result["failed"] = False  # else Ansible fails a non-zero `rc` ("Unknown error")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
