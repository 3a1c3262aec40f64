#!/usr/bin/env bash
# herd's peak RSS while it ships a big artifact to a few lab hosts, against
# the artifact's size: the upload streams (each host reads the file itself
# through a 64 KiB buffer), so RSS stays flat whatever the size.
#
#   bench/artifact-rss.sh            a 1 MB and a 200 MB file, then a 200 MB
#                                    directory, to 4 hosts; then a re-run of
#                                    the 200 MB file, which sends nothing
# Knobs: ARTIFACT_HOSTS (4), ARTIFACT_MB (200), HERD_BIN (default: a fresh
# release build), BENCH_KEEP=1 (keep the work directory).
#
# Not a timed test: run it by hand. Peak RSS is the child's ru_maxrss (wait4),
# measured by bench/bench.py; bytes sent come from herd's JSON report.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
hosts=${ARTIFACT_HOSTS:-4}
big_mb=${ARTIFACT_MB:-200}

say() { printf 'bench: %s\n' "$*" >&2; }
export HERD_LAB_VENV="${HERD_LAB_VENV:-$repo/.venv}"
if [ -z "${HERD_BIN:-}" ]; then
    say "cargo build --release"
    cargo build --release --quiet
    HERD_BIN="${CARGO_TARGET_DIR:-target}/release/herd"
fi
case "$HERD_BIN" in /*) herd=$HERD_BIN ;; *) herd="$repo/$HERD_BIN" ;; esac

work=$(mktemp -d /tmp/herd-artifact-rss.XXXXXX)
chmod 755 "$work"
lab="$work/lab"
cleanup() {
    "$herd" lab down --dir "$lab" >/dev/null 2>&1 || true
    if [ -z "${BENCH_KEEP:-}" ]; then rm -rf "$work"; else say "kept $work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "herd lab up --hosts $hosts"
"$herd" lab up --hosts "$hosts" --dir "$lab" --venv "$HERD_LAB_VENV" >"$work/up.log" 2>&1 ||
    { cat "$work/up.log" >&2; exit 1; }

say "writing the artifacts (1 MB, ${big_mb} MB, a ${big_mb} MB directory)"
head -c $((1 << 20)) /dev/urandom >"$work/small.bin"
head -c $((big_mb << 20)) /dev/urandom >"$work/big.bin"
mkdir -p "$work/tree/sub"
for i in 1 2 3 4; do
    head -c $((big_mb << 18)) /dev/urandom >"$work/tree/sub/part$i.bin"
done

# ship NAME SRC KEY: one run shipping SRC to every host; prints a result row.
ship() {
    local name=$1 src=$2 key=$3
    cat >"$work/$name.yml" <<YAML
hosts: web
steps:
  - name: Ship
    $key: { src: $src, dest: "{{ app_dir }}/$name" }
    timeout: 10m
YAML
    python3 "$repo/bench/bench.py" measure "$work/$name.json" --events "$work/$name.events" -- \
        "$herd" run -i "$lab/inventory.yml" --output json "$work/$name.yml" >/dev/null
    python3 - "$work/$name.json" "$work/$name.events" "$name" "$src" <<'PY'
import json, os, sys
m = json.load(open(sys.argv[1]))
sent = [e["transfer"]["bytes"] for e in map(json.loads, open(sys.argv[2]))
        if e.get("event") == "step_finished" and "transfer" in e]
src = sys.argv[4]
size = os.path.getsize(src) if os.path.isfile(src) else sum(
    os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(src) for f in fs)
print(f"{sys.argv[3]:<10} {size / 2**20:>9.1f} {len(sent):>5} {sum(sent) / 2**20:>10.1f} "
      f"{m['rss_kb'] / 1024:>9.1f} {m['wall']:>7.1f}  exit {m['rc']}")
PY
}

printf '%-10s %9s %5s %10s %9s %7s\n' run "size MiB" hosts "sent MiB" "RSS MiB" "wall s"
ship small "$work/small.bin" upload
ship big "$work/big.bin" upload
ship tree "$work/tree" upload
ship big "$work/big.bin" upload   # again: the hosts have it, nothing is sent
