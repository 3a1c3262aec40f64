#!/usr/bin/env python3
"""Helpers for bench/run.sh: read the lab, time a command, prove the work
was done on the hosts, and print the results table.

The lab's hosts all live on this machine (sshd on 127.0.0.x), so proofs read
the hosts' files and /proc directly, outside the timed region, and fetch the
health checks over HTTP: neither herd nor the OpenSSH scripts are trusted to
report their own success.

Subcommands (all output on stdout, one result per line):
  hosts LAB_DIR                       name addr ssh_port http_port app_dir pidfile user key known_hosts
  measure OUT.json [--events FILE] -- CMD...
                                      run CMD, record wall time, peak RSS, user+sys CPU, exit code;
                                      with --events, CMD's stdout lines go to FILE, each JSON
                                      object given "t", the seconds since CMD started
  workers LAB_DIR OUT.json            record each host's Gunicorn master and workers
  verify-w1 LAB_DIR BEFORE.json REL   current -> REL, master kept, every worker replaced, /healthz serves REL
  verify-w2 LAB_DIR RUN_ID STEPS      every host has STEPS files holding RUN_ID
  verify-w3 HOSTS_FILE OUTPUT_DIR     OpenSSH W3: one file per host holding its name
  verify-w4 LAB_DIR SRC NAME          every host's APP_DIR/NAME has SRC's SHA-256
  clear-w4 LAB_DIR NAME               removes APP_DIR/NAME from every host (so the next run sends)
  transfer JSON_EVENTS                herd's upload steps: hosts, bytes sent, hosts found unchanged
  exec-results LAB_DIR JSON_EVENTS    herd exec --output json: hosts done / failed / missing
  phases JSON_EVENTS                  where a herd run spent its time, from --output json events
  median FILE...                      median of the measure files, as one JSON object
"""

import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request


def load_lab(lab_dir):
    with open(os.path.join(lab_dir, "lab.json")) as f:
        return json.load(f)


def cmd_hosts(lab_dir):
    lab = load_lab(lab_dir)
    for h in lab["hosts"]:
        print(
            h["name"], h["address"], h["ssh_port"], h["http_port"], h["app_dir"],
            h["pidfile"], lab["user"], lab["private_key"], lab["known_hosts"],
        )


def cmd_measure(out, cmd, events=None):
    """Wall time, and the child's own rusage from wait4: ru_maxrss is the peak
    RSS of the child or of any descendant it waited for (for herd, herd
    itself; for a shell script, its largest single process). herd's JSON
    events carry no clock, so with `events` each line is stamped on arrival."""
    start = time.monotonic()
    if events is None:
        proc = subprocess.Popen(cmd)
    else:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        with open(events, "w") as sink:
            for raw in proc.stdout:
                t = time.monotonic() - start
                line = raw.decode(errors="replace").rstrip("\n")
                try:
                    event = json.loads(line)
                    event["t"] = round(t, 4)
                    line = json.dumps(event)
                except (json.JSONDecodeError, TypeError):
                    pass
                sink.write(line + "\n")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    result = {
        "wall": wall,
        "rss_kb": usage.ru_maxrss,
        "user": usage.ru_utime,
        "sys": usage.ru_stime,
        "rc": os.waitstatus_to_exitcode(status),
    }
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


def children_of(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] not in "ZX":
            kids.append(int(entry))
    return sorted(kids)


def read_master(pidfile):
    try:
        with open(pidfile) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def cmd_workers(lab_dir, out):
    lab = load_lab(lab_dir)
    seen = {}
    for h in lab["hosts"]:
        master = read_master(h["pidfile"])
        seen[h["name"]] = {"master": master, "workers": children_of(master) if master else []}
    with open(out, "w") as f:
        json.dump(seen, f)
    return 0


def healthz(address, port):
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/healthz", timeout=5) as r:
            return r.status, r.read().decode(errors="replace").strip()
    except Exception as e:  # noqa: BLE001 - any failure is a failed proof
        return None, str(e)


def cmd_verify_w1(lab_dir, before_file, release):
    lab = load_lab(lab_dir)
    with open(before_file) as f:
        before = json.load(f)
    problems = []
    for h in lab["hosts"]:
        name, app = h["name"], h["app_dir"]
        target = os.readlink(os.path.join(app, "current"))
        if os.path.basename(target.rstrip("/")) != release:
            problems.append(f"{name}: current -> {target}")
        try:
            with open(os.path.join(app, "current", "RELEASE")) as f:
                if f.read().strip() != release:
                    problems.append(f"{name}: RELEASE is not {release}")
        except OSError as e:
            problems.append(f"{name}: {e}")
        old = before[name]
        master = read_master(h["pidfile"])
        if master != old["master"]:
            problems.append(f"{name}: master {old['master']} -> {master}")
        workers = children_of(master) if master else []
        if set(workers) & set(old["workers"]) or len(workers) != len(old["workers"]):
            problems.append(f"{name}: workers {old['workers']} -> {workers}")
        status, body = healthz(h["address"], h["http_port"])
        if status != 200 or release not in body.split():
            problems.append(f"{name}: /healthz {status} {body!r}")
    return report(len(lab["hosts"]), problems)


def cmd_verify_w2(lab_dir, run_id, steps):
    lab = load_lab(lab_dir)
    problems = []
    for h in lab["hosts"]:
        for step in range(1, int(steps) + 1):
            path = os.path.join(h["app_dir"], "bench-w2", run_id, f"step{step}")
            try:
                with open(path) as f:
                    if f.read().strip() != run_id:
                        problems.append(f"{h['name']}: {path} does not hold {run_id}")
            except OSError as e:
                problems.append(f"{h['name']}: {e}")
    return report(len(lab["hosts"]), problems)


def cmd_verify_w3(hosts_file, output_dir):
    problems = []
    count = 0
    with open(hosts_file) as f:
        for line in f:
            name = line.split()[0]
            count += 1
            try:
                with open(os.path.join(output_dir, name)) as out:
                    if out.read().strip() != name:
                        problems.append(f"{name}: wrong output")
            except OSError:
                problems.append(f"{name}: no output")
    return report(count, problems)


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def cmd_verify_w4(lab_dir, src, name):
    lab = load_lab(lab_dir)
    want = sha256_of(src)
    problems = []
    for h in lab["hosts"]:
        path = os.path.join(h["app_dir"], name)
        try:
            got = sha256_of(path)
        except OSError as e:
            problems.append(f"{h['name']}: {e}")
            continue
        if got != want:
            problems.append(f"{h['name']}: {path} has sha256 {got[:12]}, not {want[:12]}")
    return report(len(lab["hosts"]), problems)


def cmd_clear_w4(lab_dir, name):
    for h in load_lab(lab_dir)["hosts"]:
        try:
            os.remove(os.path.join(h["app_dir"], name))
        except FileNotFoundError:
            pass
    return 0


def cmd_transfer(events_file):
    """The `transfer` of every upload step herd finished: how many hosts,
    the bytes sent in all, how many hosts already had the content."""
    done = [e for e in read_events(events_file) if e.get("event") == "step_finished" and "transfer" in e]
    print(json.dumps({
        "hosts": len(done),
        "bytes": sum(e["transfer"]["bytes"] for e in done),
        "unchanged": sum(1 for e in done if e["transfer"].get("unchanged")),
    }))
    return 0


def cmd_exec_results(lab_dir, events_file):
    """herd exec: every host finished `done` and printed its own name."""
    names = [h["name"] for h in load_lab(lab_dir)["hosts"]]
    state, said = {}, {}
    for event in read_events(events_file):
        if event.get("event") == "host_finished":
            state[event["host"]] = event.get("state")
        elif event.get("event") == "host_unreachable":
            state[event["host"]] = f"unreachable: {event.get('reason')}"
        elif event.get("event") == "step_finished":
            said[event["host"]] = (event.get("stdout") or "").strip()
    problems = []
    for name in names:
        if state.get(name) != "done":
            problems.append(f"{name}: {state.get(name, 'no result')}")
        elif said.get(name) != name:
            problems.append(f"{name}: printed {said.get(name)!r}")
    return report(len(names), problems)


def report(total, problems):
    ok = total - len({p.split(":")[0] for p in problems})
    print(json.dumps({"hosts": total, "ok": ok, "problems": problems[:5]}))
    return 0 if not problems else 1


def read_events(path):
    events = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return events


def cmd_phases(events_file, wall=None):
    """Where one herd run spent its time, from events stamped by `measure
    --events`: start-up (process start to run_started), connecting every
    host, taking the deploy lock, each host's steps and reload, and the exit."""
    events = read_events(events_file)
    def at(kind):
        return [e for e in events if e.get("event") == kind and "t" in e]
    def stats(values):
        if not values:
            return None
        return {"median": round(statistics.median(values), 3), "max": round(max(values), 3), "n": len(values)}
    started = at("run_started")
    connected = at("host_connected")
    batches = at("batch_started")
    finished = at("run_finished")
    if not started:
        print(json.dumps({"error": "no stamped events"}))
        return 0
    t0 = started[0]["t"]
    phases = {"startup": round(t0, 3)}
    if connected:
        phases["connect_all"] = round(max(e["t"] for e in connected) - t0, 3)
        phases["connect_per_host"] = stats([e["elapsed"] for e in connected])
    # `herd exec` starts each host once it is connected: its one batch opens
    # before the connections, and there is no lock phase.
    if batches and connected and batches[0]["t"] >= max(e["t"] for e in connected):
        phases["lock"] = round(batches[0]["t"] - max(e["t"] for e in connected), 3)
    if batches and finished:
        ends = [b["t"] for b in batches[1:]] + [finished[0]["t"]]
        phases["batches"] = stats([end - b["t"] for b, end in zip(batches, ends)])
    first_step, reload_start, reload_end, host_end = {}, {}, {}, {}
    for e in events:
        host, kind = e.get("host"), e.get("event")
        if kind == "step_started" and not e.get("rollback"):
            first_step.setdefault(host, e["t"])
        elif kind == "reload_started":
            reload_start[host] = e["t"]
        elif kind == "reload_finished":
            reload_end[host] = e["t"]
        elif kind in ("host_finished",) and host in first_step:
            host_end[host] = e["t"]
    steps = [reload_start.get(h, host_end.get(h, t)) - t for h, t in first_step.items() if h in reload_start or h in host_end]
    phases["steps_per_host"] = stats(steps)
    phases["reload_per_host"] = stats([reload_end[h] - reload_start[h] for h in reload_end if h in reload_start])
    if finished:
        phases["report_and_close"] = round(finished[0]["t"] - max(e["t"] for e in events if e.get("event") == "host_finished"), 3) if at("host_finished") else None
        if wall is not None:
            phases["exit_after_report"] = round(float(wall) - finished[0]["t"], 3)
    print(json.dumps(phases))
    return 0


def cmd_median(files):
    runs = []
    for name in files:
        with open(name) as f:
            runs.append(json.load(f))
    out = {key: statistics.median(r[key] for r in runs) for key in ("wall", "rss_kb", "user", "sys")}
    out["rc"] = max(abs(r["rc"]) for r in runs)
    out["runs"] = len(runs)
    print(json.dumps(out))
    return 0


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[0], argv[1:]
    if command == "measure":
        out, rest, events = args[0], args[1:], None
        if rest[0] == "--events":
            events, rest = rest[1], rest[2:]
        assert rest[0] == "--", "measure OUT [--events FILE] -- CMD..."
        return cmd_measure(out, rest[1:], events)
    table = {
        "hosts": cmd_hosts, "workers": cmd_workers, "verify-w1": cmd_verify_w1,
        "verify-w2": cmd_verify_w2, "verify-w3": cmd_verify_w3,
        "verify-w4": cmd_verify_w4, "clear-w4": cmd_clear_w4, "transfer": cmd_transfer,
        "exec-results": cmd_exec_results, "phases": cmd_phases,
    }
    if command == "median":
        return cmd_median(args)
    return table[command](*args) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
