"""Ansible's answers for tests/ansible_diff.rs, as one JSON document on stdout.

Run with the Python of the venv that holds ansible-core, from this directory:
    python ansible_side.py INVENTORY.yml...
For each inventory it gives:
  - "hosts": every host in the order of the pattern `all` ("all_orders":
    each order Ansible may give), each with its
    `group_names` and merged variables as `ansible-inventory -i INV --list`
    prints them (`_meta.hostvars`, group membership from the group tree);
  - "groups": Ansible's `groups` variable, each group's hosts in its order
    (each order Ansible may give);
  - "inventory_warnings": what ansible-inventory said on stderr;
  - "patterns": for each line of INVENTORY.patterns, what
    `ansible -i INV PATTERN --list-hosts` selects (an @file's lines taken
    as its terms, as `--limit @file` reads them), in order, or its error, and
    the terms of it that match nothing (which Ansible only warns about).
The patterns run in this one process through Ansible's InventoryManager, the
code the `ansible` command runs; `ansible-inventory` runs once per inventory.

Ansible's own order is not always fixed: a group's hosts come level by level,
and the groups of a level past the first are walked in the order of a Python
set of Group objects, which hash by address, so hosts two or more levels
down can come in another order from one run to the next. Each pattern is
therefore also evaluated with that walk in a fixed order, the groups' order
of first mention and its reverse: when the answers differ, "orders" lists
every order seen, any of which Ansible may print.
"""

import concurrent.futures
import json
import math
import os
import subprocess
import sys
from itertools import chain

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.inventory.group import Group
from ansible.inventory.manager import InventoryManager, split_host_pattern
from ansible.parsing.dataloader import DataLoader
from ansible.utils.display import Display

# Ansible's own error when a pattern leaves no host (cli/__init__.py, get_host_list).
NO_HOSTS = "Specified inventory, host pattern and/or --limit leaves us with no hosts to target."
BIN = os.path.dirname(sys.executable)


def typed(value):
    """JSON without what JSON cannot hold: floats that are not numbers and
    integers beyond 64 bits become tagged strings, so they compare as such."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float) and (math.isinf(value) or math.isnan(value)):
        return "<float %r>" % value
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return "<int %d>" % value
    return value


def inventory_list(path):
    """`ansible-inventory -i PATH --list`: its JSON and its stderr."""
    done = subprocess.run(
        [os.path.join(BIN, "ansible-inventory"), "-i", path, "--list"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return None, done.stderr
    return json.loads(done.stdout), done.stderr


def group_names(listed):
    """Each host's groups (sorted, without `all`) from --list's group tree."""
    tree = {name: body for name, body in listed.items() if name != "_meta"}
    memo = {}

    def members(name, seen=()):
        if name in memo:
            return memo[name]
        body = tree.get(name, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            if child not in seen:
                found |= members(child, seen + (name,))
        memo[name] = found
        return found

    names = {}
    for group in tree:
        for host in members(group):
            names.setdefault(host, set())
            if group != "all":
                names[host].add(group)
    return {host: sorted(groups) for host, groups in names.items()}


ANSIBLES_WALK = Group._walk_relationship


def walk_in_order(rank):
    """Group._walk_relationship with each level's groups taken in `rank`'s
    order instead of a set's."""

    def walk(self, rel, include_self=False, preserve_ordering=False):
        if not preserve_ordering:
            return ANSIBLES_WALK(self, rel, include_self, preserve_ordering)
        seen = set()
        unprocessed = set(getattr(self, rel))
        if include_self:
            unprocessed.add(self)
        ordered = [self] if include_self else []
        ordered.extend(getattr(self, rel))
        while unprocessed:
            seen.update(unprocessed)
            new_unprocessed = set()
            for new_item in chain.from_iterable(getattr(g, rel) for g in sorted(unprocessed, key=rank)):
                new_unprocessed.add(new_item)
                if new_item not in seen:
                    ordered.append(new_item)
            new_unprocessed.difference_update(seen)
            unprocessed = new_unprocessed
        return ordered

    return walk


def walks(manager):
    """Ansible's own walk, then the order of first mention and its reverse."""
    mentioned = {name: i for i, name in enumerate(manager._inventory.groups)}
    return [
        ANSIBLES_WALK,
        walk_in_order(lambda g: mentioned[g.name]),
        walk_in_order(lambda g: -mentioned[g.name]),
    ]


def select_every_way(manager, pattern):
    """`select` under each walk: the answer, with "orders" when they differ."""
    answers = []
    for walk in walks(manager):
        Group._walk_relationship = walk
        for group in manager._inventory.groups.values():
            group._hosts_cache = None
        try:
            answers.append(select(manager, pattern))
        finally:
            Group._walk_relationship = ANSIBLES_WALK
    answer = answers[1]
    orders = []
    for other in answers:
        if "hosts" in other and other["hosts"] not in orders:
            orders.append(other["hosts"])
    if len(orders) > 1:
        answer["orders"] = orders
    return answer


def groups_every_way(manager):
    """Ansible's `groups` variable (every group's hosts) under each walk:
    for each group, every order seen."""
    seen = {}
    for walk in walks(manager):
        Group._walk_relationship = walk
        try:
            for group in manager._inventory.groups.values():
                group._hosts_cache = None
            manager._inventory._groups_dict_cache = {}
            for name, hosts in manager._inventory.get_groups_dict().items():
                orders = seen.setdefault(name, [])
                if hosts not in orders:
                    orders.append(list(hosts))
        finally:
            Group._walk_relationship = ANSIBLES_WALK
    for group in manager._inventory.groups.values():
        group._hosts_cache = None
    manager._inventory._groups_dict_cache = {}
    return seen


def with_files_read(pattern):
    """The pattern's terms, each `@file` replaced by the lines of the file
    (the terms Ansible's `--limit @file` reads, in their order)."""
    terms = []
    for term in split_host_pattern(pattern):
        if term.startswith("@"):
            if not os.path.isfile(term[1:]):
                raise AnsibleError("Unable to find limit file %s" % term[1:])
            with open(term[1:], encoding="utf-8") as lines:
                terms.extend(line.strip() for line in lines if line.strip())
        else:
            terms.append(term)
    return terms


def select(manager, pattern):
    """What `ansible -i INV PATTERN --list-hosts` lists, or its error."""
    manager.clear_pattern_cache()
    manager._hosts_patterns_cache = {}
    try:
        hosts = manager.list_hosts(with_files_read(pattern))
    except AnsibleError as error:
        return {"error": str(error).splitlines()[0]}
    finally:
        manager.subset(None)
    if not hosts:
        return {"error": NO_HOSTS}
    return {"hosts": [str(h) for h in hosts]}


def unmatched(manager, pattern):
    """The terms of the pattern (without `&` or `!`) that match no host and
    no group, which Ansible warns about and ignores."""
    if any(term.startswith("@") for term in split_host_pattern(pattern)):
        return []
    saved = C.HOST_PATTERN_MISMATCH
    C.HOST_PATTERN_MISMATCH = "error"
    terms = []
    try:
        for term in split_host_pattern(pattern):
            bare = term[1:] if term[0] in "&!" else term
            # The term as the whole pattern's evaluation sees it, not split again.
            manager.clear_pattern_cache()
            try:
                manager._evaluate_patterns([bare])
            except AnsibleError as error:
                if str(error).startswith("Could not match supplied host pattern") and bare not in terms:
                    terms.append(bare)
    finally:
        C.HOST_PATTERN_MISMATCH = saved
    return terms


def patterns_of(path):
    with open(os.path.splitext(path)[0] + ".patterns", encoding="utf-8") as lines:
        return [l.rstrip("\n") for l in lines if l.strip() and not l.startswith("#")]


def main(paths):
    Display().verbosity = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        listed = dict(zip(paths, pool.map(inventory_list, paths)))
    result = {}
    for path in paths:
        listing, warnings = listed[path]
        if listing is None:
            result[path] = {"error": warnings.strip().splitlines()[-1:], "inventory_warnings": warnings}
            continue
        manager = InventoryManager(loader=DataLoader(), sources=[path])
        names = group_names(listing)
        hostvars = listing.get("_meta", {}).get("hostvars", {})
        every = select_every_way(manager, "all")
        order = every["hosts"]
        hosts = [
            {"name": h, "groups": names.get(h, []), "vars": typed(hostvars.get(h, {}))}
            for h in order
        ]
        patterns = []
        for pattern in patterns_of(path):
            answer = select_every_way(manager, pattern)
            answer["pattern"] = pattern
            answer["unmatched"] = unmatched(manager, pattern)
            patterns.append(answer)
        result[path] = {"hosts": hosts, "all_orders": every.get("orders", [order]),
                        "groups": groups_every_way(manager), "inventory_warnings": warnings, "patterns": patterns}
    json.dump(result, sys.stdout, allow_nan=False)


if __name__ == "__main__":
    main(sys.argv[1:])
