#!/usr/bin/env bash
# The demo: start a local lab fleet of 7 hosts (real sshd on 127.0.0.x, each
# with an app server: Gunicorn, uWSGI, Unicorn, Puma, nginx, and two more
# Gunicorns under a real systemd user manager), show what herd would do, roll
# release v2 onto every host in batches (steps, then each server's proven
# reload), then v3, show which release
# each host runs, roll the fleet back to v2, show the result on the hosts, and
# stop the lab again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
export HERD_LAB_VENV="$PWD/.venv"
cargo build --release --quiet
herd="${CARGO_TARGET_DIR:-target}/release/herd"
lab=.herd-lab

step() { printf '\n== %s\n' "$*" >&2; }

"$herd" lab down --dir "$lab" >/dev/null 2>&1 || true
trap '"$herd" lab down --dir "$lab" >/dev/null 2>&1 || true' EXIT

step "herd lab up: host01-05 run Gunicorn, uWSGI, Unicorn, Puma and nginx; host06 and host07 Gunicorn as a systemd user unit"
"$herd" lab up --hosts 7 --unit-hosts 2 --servers gunicorn,uwsgi,unicorn,puma,nginx --dir "$lab"

step "herd hosts: the inventory the lab wrote"
"$herd" hosts -i "$lab/inventory.yml"

step "herd hosts on an Ansible inventory with groups and ranges: web but not the canary"
"$herd" hosts -i inventories/example.yml -l 'web:!canary'

step "herd plan: batches and the exact commands, nothing contacted"
"$herd" plan playbooks/deploy.yml -i "$lab/inventory.yml" -e release=v2 -l host04,host05,host06

step "herd run: roll release v2 across the fleet"
"$herd" run playbooks/deploy.yml -i "$lab/inventory.yml" -e release=v2

step "herd run: and release v3 after it"
"$herd" run playbooks/deploy.yml -i "$lab/inventory.yml" -e release=v3

step "herd releases: current and previous release on each host"
"$herd" releases playbooks/deploy.yml -i "$lab/inventory.yml"

step "herd rollback: every host back to its previous release (v2), reloaded and proven"
"$herd" rollback playbooks/deploy.yml -i "$lab/inventory.yml"

step "herd releases: the fleet is on v2 again"
"$herd" releases playbooks/deploy.yml -i "$lab/inventory.yml"

step "herd check: every host reachable, and the master a reload would signal"
"$herd" check -i "$lab/inventory.yml" --playbook playbooks/deploy.yml || true

step "herd exec: the release each host's current symlink now points at"
"$herd" exec -i "$lab/inventory.yml" -- 'cat {{ app_dir }}/current/RELEASE'

step "the fleet serves v2 again (each host's /healthz)"
python3 - "$lab/lab.json" <<'PY'
import json, sys, urllib.request
for host in json.load(open(sys.argv[1]))["hosts"]:
    url = "http://%s:%d/healthz" % (host["address"], host["http_port"])
    print("%s  %s" % (host["name"], urllib.request.urlopen(url, timeout=5).read().decode().strip()))
PY
