#!/usr/bin/python
"""A job user's egress firewall: one nftables chain per job uid in the `inet marteau` table.

The engine's `--allow-host` check runs inside the test process, so test code
that opens its own sockets steps around it; this rule holds in the kernel,
whatever code the job user runs.
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: marteau_firewall
short_description: Install or remove the egress firewall of one Marteau job user
description:
  - Keeps one C(inet marteau) nftables table. Its C(output) chain sends the
    packets of each job user (C(meta skuid)) to that user's chain C(job_<uid>)
    through the verdict map C(jobs); other users' traffic is not touched.
  - A job chain accepts TCP to the allowed hosts' addresses (and ports), and
    port 53 (UDP and TCP) to the resolvers of C(resolv_conf); it counts and
    drops everything else, IPv4 and IPv6, loopback included. The addresses it
    dropped are kept in two small sets (64 addresses each).
  - Names are resolved once, at install; the rules follow those addresses.
  - Every change is one C(nft -j -f -) transaction of generated JSON, under a
    lock shared by every node on the machine. Chains whose uid no longer has
    a user are removed on the way.
  - Needs root (C(become)).
options:
  state:
    description: C(present) installs (or replaces) the user's rules, C(absent) removes them.
    type: str
    choices: [present, absent]
    default: present
  uid:
    description: The job user's uid.
    type: int
  user:
    description: The job user's name, looked up on the node when C(uid) is not given.
    type: str
  allow:
    description: Allowed hosts, C(HOST), C(HOST:PORT), C([V6]) or C([V6]:PORT); C(HOST) allows every TCP port.
    type: list
    elements: str
    default: []
  resolv_conf:
    description: The file naming the resolvers the user may ask (C(nameserver) lines).
    type: path
    default: /etc/resolv.conf
"""
EXAMPLES = r"""
- name: Let job user 1234 reach only the target (port 8080) and another host (every port)
  marteau_firewall:
    uid: 1234
    allow:
      - 127.0.0.1:8080
      - api.example.test
  become: true
  register: rules

- name: Remove its rules once the bench has ended, reading what they dropped
  marteau_firewall:
    state: absent
    uid: 1234
  become: true
  register: removal

- name: Remove the rules of a job user left on the node, by name
  marteau_firewall:
    state: absent
    user: mj0123456789ab
  become: true
"""

RETURN = r"""
chain:
  description: The user's chain (C(job_<uid>)).
  returned: success
  type: str
uid:
  description: The job user's uid.
  returned: success
  type: int
accepted:
  description: The destinations accepted, C(ADDRESS) or C(ADDRESS:PORT) (IPv6 in brackets).
  returned: O(state=present)
  type: list
  elements: str
resolvers:
  description: The resolvers the user may ask (port 53), from O(resolv_conf).
  returned: O(state=present)
  type: list
  elements: str
unresolved:
  description: Allowed names that did not resolve, with the reason; nothing is allowed for them.
  returned: O(state=present)
  type: dict
removed:
  description: True when the call removed the user's rules.
  returned: O(state=absent)
  type: bool
dropped:
  description: Packets the rules dropped while they were in place.
  returned: O(state=absent)
  type: int
destinations:
  description: The addresses those packets went to (up to 64 per family).
  returned: O(state=absent)
  type: list
  elements: str
pruned:
  description: Chains of users that no longer exist, removed on the way.
  returned: success
  type: list
  elements: str
"""

import fcntl
import ipaddress
import json
import pwd
import re
import socket
import subprocess
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule

TABLE = "marteau"
LOCK = "/run/marteau-firewall.lock"
SET_SIZE = 64
CHAIN = re.compile(r"job_(\d+)\Z")
FAMILIES = {4: ("ip", "ipv4_addr", "ipv4"), 6: ("ip6", "ipv6_addr", "ipv6")}


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "uid": {"type": "int"},
            "user": {"type": "str"},
            "allow": {"type": "list", "elements": "str", "default": []},
            "resolv_conf": {"type": "path", "default": "/etc/resolv.conf"},
        },
        required_one_of=[("uid", "user")],
        supports_check_mode=False,
    )
    nft = module.get_bin_path("nft")
    if not nft:
        module.fail_json(
            msg="nft not found: install nftables on the node (Debian: apt install nftables)"
        )
    uid = module.params["uid"]
    if uid is None:
        try:
            uid = pwd.getpwnam(module.params["user"]).pw_uid
        except KeyError:
            if module.params["state"] == "absent":
                module.exit_json(
                    changed=False, removed=False, dropped=0, destinations=[], pruned=[]
                )
            module.fail_json(msg=f"no such user on the node: {module.params['user']}")
    if uid == 0:
        module.fail_json(msg="refusing to firewall uid 0 (root)")
    with open(LOCK, "a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        ruleset = Ruleset(module, nft)
        if module.params["state"] == "present":
            install(module, ruleset, uid)
        else:
            remove(module, ruleset, uid)


def split_entry(entry):
    """HOST[:PORT] or [V6][:PORT] -> (host, port or None); a bare IPv6 literal has no port."""
    text = entry.strip()
    if text.count(":") > 1 and not text.startswith("["):
        return text, None
    parts = urlsplit("//" + text)
    port = parts.port  # ValueError for a port out of range or not a number
    if not parts.hostname or port == 0:
        raise ValueError("expected HOST, HOST:PORT, [V6] or [V6]:PORT")
    return parts.hostname, port


def resolve(module):
    """The allowed (address, port or None) pairs and the names that did not resolve."""
    pairs, unresolved = [], {}
    for entry in module.params["allow"]:
        try:
            host, port = split_entry(entry)
        except ValueError as exc:
            module.fail_json(msg=f"allow: {entry!r}: {exc}")
        try:
            found = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
        except OSError as exc:
            unresolved[host] = str(exc)
            continue
        for info in found:
            pair = (ipaddress.ip_address(info[4][0].split("%")[0]), port)
            if pair not in pairs:
                pairs.append(pair)
    return pairs, unresolved


def resolvers(path):
    """The nameserver addresses of resolv.conf (IPv6 scope ids dropped)."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read(65536).splitlines()
    except OSError:
        return found
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver":
            try:
                address = ipaddress.ip_address(words[1].split("%")[0])
            except ValueError:
                continue
            if address not in found:
                found.append(address)
    return found


class Ruleset:
    """The `inet marteau` table as nft lists it, and the transaction to apply."""

    def __init__(self, module, nft):
        self.module, self.nft = module, nft
        listed = subprocess.run(
            [nft, "-j", "list", "table", "inet", TABLE], capture_output=True, text=True
        )
        self.objects = json.loads(listed.stdout)["nftables"] if listed.returncode == 0 else []
        self.commands = []

    def named(self, kind):
        return {o[kind]["name"]: o[kind] for o in self.objects if kind in o}

    def rules(self, chain):
        return [o["rule"] for o in self.objects if "rule" in o and o["rule"]["chain"] == chain]

    def mapped(self):
        """uid -> chain, from the `jobs` verdict map."""
        found = {}
        for elem in self.named("map").get("jobs", {}).get("elem", []):
            key, verdict = elem
            found[int(key)] = verdict.get("jump", {}).get("target")
        return found

    def add(self, verb, kind, **fields):
        self.commands.append({verb: {kind: {"family": "inet", "table": TABLE, **fields}}})

    def drop_user(self, uid):
        """Queue the removal of uid's map entry, chain and sets; return what they counted."""
        chain = f"job_{uid}"
        counted = {"dropped": 0, "destinations": []}
        if uid in self.mapped():
            self.add("delete", "element", name="jobs", elem=[uid])
        if chain in self.named("chain"):
            for rule in self.rules(chain):
                for expr in rule["expr"]:
                    if "counter" in expr:
                        counted["dropped"] += int(expr["counter"]["packets"])
            self.add("delete", "chain", name=chain)
        sets = self.named("set")
        for family in FAMILIES:
            name = f"{chain}_v{family}"
            if name in sets:
                for elem in sets[name].get("elem", []):
                    value = elem["elem"]["val"] if isinstance(elem, dict) else elem
                    counted["destinations"].append(str(value))
                self.add("delete", "set", name=name)
        return counted

    def prune(self, keep):
        """Queue the removal of chains whose uid has no user any more."""
        pruned = []
        for name in self.named("chain"):
            match = CHAIN.match(name)
            if match and int(match.group(1)) != keep:
                try:
                    pwd.getpwuid(int(match.group(1)))
                except KeyError:
                    self.drop_user(int(match.group(1)))
                    pruned.append(name)
        return pruned

    def apply(self):
        if not self.commands:
            return
        payload = json.dumps({"nftables": self.commands})
        done = subprocess.run(
            [self.nft, "-j", "-f", "-"], input=payload, capture_output=True, text=True
        )
        if done.returncode != 0:
            self.module.fail_json(
                msg=f"nft refused the rules: {done.stderr.strip()}", rules=self.commands
            )


def match(left, right):
    return {"match": {"op": "==", "left": left, "right": right}}


def destination(address):
    protocol = FAMILIES[address.version][0]
    return match({"payload": {"protocol": protocol, "field": "daddr"}}, str(address))


def job_rules(uid, pairs, nameservers):
    """The chain's rules, as nft JSON expression lists, in order."""
    chain = f"job_{uid}"
    rules = []
    for address in nameservers:
        rules.append(
            [
                destination(address),
                match({"meta": {"key": "l4proto"}}, {"set": ["tcp", "udp"]}),
                match({"payload": {"protocol": "th", "field": "dport"}}, 53),
                {"accept": None},
            ]
        )
    for address, port in pairs:
        rule = [destination(address), match({"meta": {"key": "l4proto"}}, "tcp")]
        if port is not None:
            rule.append(match({"payload": {"protocol": "tcp", "field": "dport"}}, port))
        rules.append(rule + [{"accept": None}])
    for family, (protocol, _, nfproto) in FAMILIES.items():
        # no verdict: a full set makes this rule stop, and the next one still drops
        rules.append(
            [
                match({"meta": {"key": "nfproto"}}, nfproto),
                {
                    "set": {
                        "op": "add",
                        "elem": {"payload": {"protocol": protocol, "field": "daddr"}},
                        "set": f"@{chain}_v{family}",
                    }
                },
            ]
        )
    rules.append([{"counter": {"packets": 0, "bytes": 0}}, {"drop": None}])
    return rules


def install(module, ruleset, uid):
    pairs, unresolved = resolve(module)
    nameservers = resolvers(module.params["resolv_conf"])
    chain = f"job_{uid}"
    pruned = ruleset.prune(uid)
    ruleset.drop_user(uid)  # a stale chain of this uid (a user removed without its rules)
    ruleset.commands.append({"add": {"table": {"family": "inet", "name": TABLE}}})
    ruleset.add("add", "map", name="jobs", type="uid", map="verdict")
    ruleset.add(
        "add", "chain", name="output", type="filter", hook="output", prio=0, policy="accept"
    )
    ruleset.add("flush", "chain", name="output")
    ruleset.add(
        "add",
        "rule",
        chain="output",
        expr=[{"vmap": {"key": {"meta": {"key": "skuid"}}, "data": "@jobs"}}],
    )
    for family, (_, kind, _) in FAMILIES.items():
        ruleset.add("add", "set", name=f"{chain}_v{family}", type=kind, size=SET_SIZE)
    ruleset.add("add", "chain", name=chain)
    for expr in job_rules(uid, pairs, nameservers):
        ruleset.add("add", "rule", chain=chain, expr=expr)
    ruleset.add("add", "element", name="jobs", elem=[[uid, {"jump": {"target": chain}}]])
    ruleset.apply()
    for host, why in unresolved.items():
        module.warn(
            f"firewall: allowed host {host} did not resolve ({why}): nothing allowed for it"
        )
    accepted = [
        str(a) if p is None else f"[{a}]:{p}" if a.version == 6 else f"{a}:{p}" for a, p in pairs
    ]
    module.exit_json(
        changed=True,
        chain=chain,
        uid=uid,
        accepted=accepted,
        resolvers=[str(a) for a in nameservers],
        unresolved=unresolved,
        pruned=pruned,
    )


def remove(module, ruleset, uid):
    chain = f"job_{uid}"
    pruned = ruleset.prune(uid)
    present = chain in ruleset.named("chain") or uid in ruleset.mapped()
    counted = ruleset.drop_user(uid)
    ruleset.apply()
    module.exit_json(
        changed=bool(ruleset.commands),
        chain=chain,
        uid=uid,
        removed=present,
        pruned=pruned,
        **counted,
    )


if __name__ == "__main__":
    main()
