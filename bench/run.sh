#!/usr/bin/env bash
# The benchmark: herd against a plain OpenSSH
# script doing the same work on the same lab hosts in the same run.
#
#   W1 rolling reload: Gunicorn hosts in batches, 3 deploy steps, HUP, prove
#      every worker replaced and /healthz serving the release (bench/w1-reload.yml
#      vs bench/openssh/w1-reload.sh)
#   W2 fan-out: 5 separate steps on every host at once (bench/w2-fanout.yml
#      vs bench/openssh/w2-fanout.sh, ControlMaster reuse)
#   W3 scale: one command on every host at once (herd exec vs bench/openssh/w3-scale.sh)
#
# Every run is checked on the hosts afterwards (files, master and worker PIDs,
# HTTP answers) by bench/bench.py; a run that did not do the work is FAIL and
# the script exits 1. Results table on stdout, progress on stderr.
#
#   bench/run.sh                      full size: W1 20 hosts, W2 200, W3 1000
#   BENCH_SCALE=tiny bench/run.sh     CI size: W1 4 hosts, W2 10, W3 20, one run each
# Knobs: BENCH_RUNS (W1/W2 runs, median taken; default 3), BENCH_W3_RUNS (1),
# BENCH_ONLY="w1 w2 w3", BENCH_W1_HOSTS, BENCH_W1_BATCH, BENCH_W2_HOSTS,
# BENCH_W3_HOSTS, BENCH_KEEP=1 (keep the work directory with every event log),
# W1_POLL (seconds between the OpenSSH script's looks after HUP; 0.25).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

case "${BENCH_SCALE:-full}" in
full) w1_hosts=20 w1_batch=5 w2_hosts=200 w3_hosts=1000 runs=3 ;;
tiny) w1_hosts=4 w1_batch=2 w2_hosts=10 w3_hosts=20 runs=1 ;;
*) echo "bench: BENCH_SCALE is full or tiny, not ${BENCH_SCALE}" >&2; exit 2 ;;
esac
w1_hosts=${BENCH_W1_HOSTS:-$w1_hosts} w1_batch=${BENCH_W1_BATCH:-$w1_batch}
w2_hosts=${BENCH_W2_HOSTS:-$w2_hosts} w3_hosts=${BENCH_W3_HOSTS:-$w3_hosts}
runs=${BENCH_RUNS:-$runs} w3_runs=${BENCH_W3_RUNS:-1}
only=" ${BENCH_ONLY:-w1 w2 w3} "

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
bench() { python3 "$repo/bench/bench.py" "$@"; }
field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

scripts/setup.sh 2>&1 | sed 's/^/  /' >&2
export HERD_LAB_VENV="${HERD_LAB_VENV:-$repo/.venv}"
say "cargo build --release"
cargo build --release --quiet
herd="${CARGO_TARGET_DIR:-target}/release/herd"
case "$herd" in /*) ;; *) herd="$repo/$herd" ;; esac

work=$(mktemp -d /tmp/herd-bench.XXXXXX)
chmod 755 "$work" # the lab user must reach its hosts in there
# ControlMaster sockets: a short path (sun_path holds 108 bytes).
export CM_DIR="$work/cm"
mkdir -p "$CM_DIR"
labs=()
failures=0

close_masters() {
    local socket
    for socket in "$CM_DIR"/*; do
        [ -S "$socket" ] && ssh -o ControlPath="$socket" -O exit lab >/dev/null 2>&1 &
    done
    wait
}
cleanup() {
    close_masters
    local lab
    for lab in "${labs[@]}"; do "$herd" lab down --dir "$lab" >/dev/null 2>&1 || true; done
    if [ -n "${BENCH_KEEP:-}" ]; then say "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# lab_up DIR HOSTS [--no-app]: starts a lab, prints how long it took.
lab_up() {
    local dir=$1 hosts=$2 started
    shift 2
    started=$(now)
    labs+=("$dir")
    "$herd" lab up --hosts "$hosts" --dir "$dir" "$@" >"$dir.up.log" 2>&1 ||
        { cat "$dir.up.log" >&2; say "herd lab up --hosts $hosts failed"; exit 1; }
    bench hosts "$dir" >"$dir/hosts.txt"
    lab_times+="$hosts hosts${1:+ $1}: $(since "$started")s; "
}
lab_down() {
    "$herd" lab down --dir "$1" >/dev/null 2>&1 || true
}

# record WORKLOAD HOSTS HERD_FILES SSH_FILES VERIFIED: one line of the table.
rows=()
details=()
record() {
    local name=$1 hosts=$2 herd_files=$3 ssh_files=$4 verified=$5
    local h s
    # shellcheck disable=SC2086
    h=$(bench median $herd_files)
    # shellcheck disable=SC2086
    s=$(bench median $ssh_files)
    rows+=("$(python3 - "$name" "$hosts" "$h" "$s" "$verified" <<'PY'
import json, sys
name, hosts, h, s, verified = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.loads(sys.argv[4]), sys.argv[5]
cpu = h["user"] + h["sys"]
print(f"{name:<16} {hosts:>5} {h['runs']:>4} {h['wall']:>8.2f} {s['wall']:>8.2f} {h['wall'] / s['wall']:>7.2f} "
      f"{h['rss_kb'] / 1024:>8.1f} {cpu:>7.2f} {h['rss_kb'] / hosts:>8.1f} {cpu * 1000 / hosts:>8.2f} "
      f"{s['user'] + s['sys']:>8.2f}  {verified}")
PY
)")
}

# W1: rolling reload on Gunicorn hosts.
w1() {
    local lab="$work/w1" herd_files="" ssh_files="" verified="ok" run rel
    lab_up "$lab" "$w1_hosts"
    for ((run = 1; run <= runs; run++)); do
        rel=$(printf 'herd-r%02d' "$run")
        say "W1 run $run/$runs: herd run --batch $w1_batch on $w1_hosts hosts (release $rel)"
        bench workers "$lab" "$work/w1-before.json"
        bench measure "$work/w1-herd-$run.json" --events "$work/w1-herd-$run.events" -- \
            "$herd" run bench/w1-reload.yml -i "$lab/inventory.yml" -e "release=$rel" \
            --batch "$w1_batch" --forks "$w1_hosts" --no-agent --output json 2>"$work/w1-herd-$run.err"
        check "W1 herd" "$work/w1-herd-$run.json" bench verify-w1 "$lab" "$work/w1-before.json" "$rel" || verified=FAIL
        details+=("W1 herd run $run phases: $(bench phases "$work/w1-herd-$run.events" "$(field "$work/w1-herd-$run.json" wall)")")
        herd_files+=" $work/w1-herd-$run.json"

        rel=$(printf 'ssh-r%02d' "$run")
        say "W1 run $run/$runs: OpenSSH script, batches of $w1_batch (release $rel)"
        bench workers "$lab" "$work/w1-before.json"
        bench measure "$work/w1-ssh-$run.json" -- \
            bench/openssh/w1-reload.sh "$lab/hosts.txt" "$rel" "$w1_batch" 2>"$work/w1-ssh-$run.err"
        close_masters
        check "W1 OpenSSH" "$work/w1-ssh-$run.json" bench verify-w1 "$lab" "$work/w1-before.json" "$rel" || verified=FAIL
        ssh_files+=" $work/w1-ssh-$run.json"
    done
    lab_down "$lab"
    record "W1 reload b=$w1_batch" "$w1_hosts" "$herd_files" "$ssh_files" "$verified"
}

# W2: five steps on every host at once.
w2() {
    local lab="$work/w2" herd_files="" ssh_files="" verified="ok" run id
    lab_up "$lab" "$w2_hosts" --no-app
    for ((run = 1; run <= runs; run++)); do
        id=$(printf 'herd-r%02d' "$run")
        say "W2 run $run/$runs: herd run, 5 steps on $w2_hosts hosts at once"
        bench measure "$work/w2-herd-$run.json" --events "$work/w2-herd-$run.events" -- \
            "$herd" run bench/w2-fanout.yml -i "$lab/inventory.yml" -e "run_id=$id" \
            --batch 100% --forks "$w2_hosts" --no-agent --output json 2>"$work/w2-herd-$run.err"
        check "W2 herd" "$work/w2-herd-$run.json" bench verify-w2 "$lab" "$id" 5 || verified=FAIL
        details+=("W2 herd run $run phases: $(bench phases "$work/w2-herd-$run.events" "$(field "$work/w2-herd-$run.json" wall)")")
        herd_files+=" $work/w2-herd-$run.json"

        id=$(printf 'ssh-r%02d' "$run")
        say "W2 run $run/$runs: OpenSSH script, 5 ssh commands per host, all hosts at once"
        bench measure "$work/w2-ssh-$run.json" -- \
            bench/openssh/w2-fanout.sh "$lab/hosts.txt" "$id" 2>"$work/w2-ssh-$run.err"
        close_masters
        check "W2 OpenSSH" "$work/w2-ssh-$run.json" bench verify-w2 "$lab" "$id" 5 || verified=FAIL
        ssh_files+=" $work/w2-ssh-$run.json"
    done
    lab_down "$lab"
    record "W2 fan-out x5" "$w2_hosts" "$herd_files" "$ssh_files" "$verified"
}

# W3: one command on every host at once.
w3() {
    local lab="$work/w3" herd_files="" ssh_files="" verified="ok" run out
    say "W3: herd lab up --hosts $w3_hosts --no-app (this takes a while at 1000)"
    lab_up "$lab" "$w3_hosts" --no-app
    for ((run = 1; run <= w3_runs; run++)); do
        say "W3 run $run/$w3_runs: herd exec on $w3_hosts hosts at once"
        bench measure "$work/w3-herd-$run.json" --events "$work/w3-herd-$run.events" -- \
            "$herd" exec -i "$lab/inventory.yml" --forks "$w3_hosts" --no-agent --output json \
            -- 'echo {{ inventory_hostname }}' 2>"$work/w3-herd-$run.err"
        check "W3 herd" "$work/w3-herd-$run.json" bench exec-results "$lab" "$work/w3-herd-$run.events" || verified=FAIL
        details+=("W3 herd run $run phases: $(bench phases "$work/w3-herd-$run.events" "$(field "$work/w3-herd-$run.json" wall)")")
        herd_files+=" $work/w3-herd-$run.json"

        say "W3 run $run/$w3_runs: OpenSSH, $w3_hosts ssh processes at once"
        out="$work/w3-ssh-$run.out"
        mkdir -p "$out"
        bench measure "$work/w3-ssh-$run.json" -- \
            bench/openssh/w3-scale.sh "$lab/hosts.txt" "$out" 2>"$work/w3-ssh-$run.err"
        check "W3 OpenSSH" "$work/w3-ssh-$run.json" bench verify-w3 "$lab/hosts.txt" "$out" || verified=FAIL
        ssh_files+=" $work/w3-ssh-$run.json"
    done
    lab_down "$lab"
    record "W3 exec" "$w3_hosts" "$herd_files" "$ssh_files" "$verified"
}

# check LABEL MEASURE_FILE VERIFY...: the command exited 0 and the hosts show the work.
check() {
    local label=$1 measured=$2 rc verdict
    shift 2
    rc=$(field "$measured" rc)
    verdict=$("$@") || { failures=$((failures + 1)); details+=("$label: exit $rc, NOT VERIFIED: $verdict"); return 1; }
    if [ "$rc" != 0 ]; then
        failures=$((failures + 1))
        details+=("$label: exit code $rc (hosts verified: $verdict)")
        return 1
    fi
    say "  $label: exit 0, verified $verdict"
}

lab_times=""
started=$(now)
for workload in w1 w2 w3; do
    case "$only" in *" $workload "*) "$workload" ;; esac
done

echo "herd benchmark ($(date -u +%Y-%m-%dT%H:%MZ), BENCH_SCALE=${BENCH_SCALE:-full})"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "herd: $("$herd" --version) ($herd); $(ssh -V 2>&1); gunicorn $("$HERD_LAB_VENV/bin/gunicorn" --version 2>/dev/null | awk '{print $NF}' | tr -d ')')"
echo "lab up: ${lab_times:-none}total bench time $(since "$started")s"
echo "runs: W1/W2 median of $runs, W3 $w3_runs; W1: herd's default validate (every new worker proves it booted, no settle), no preflight;"
echo "  after HUP the OpenSSH script polls every ${W1_POLL:-0.25}s, herd's host-side wait looks every 40ms"
echo
printf '%-16s %5s %4s %8s %8s %7s %8s %7s %8s %8s %8s  %s\n' \
    workload hosts runs herd_s ssh_s ratio rss_MiB cpu_s KiB/host ms/host ssh_cpu verified
for row in "${rows[@]}"; do echo "$row"; done
echo
echo "ratio = herd wall / OpenSSH wall; rss = herd peak RSS; cpu = herd user+sys; per host = herd rss or cpu / hosts;"
echo "ssh_cpu = user+sys of the OpenSSH script and its ssh clients (ControlPersist masters are detached and not counted)"
for line in "${details[@]}"; do echo "$line"; done
if [ "$failures" -gt 0 ]; then
    echo "FAILED: $failures run(s) did not exit 0 or did not do the work"
    exit 1
fi
