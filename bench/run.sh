#!/usr/bin/env bash
# The benchmark: herd against a plain OpenSSH
# script doing the same work on the same lab hosts in the same run.
#
#   W1 rolling reload: Gunicorn hosts in batches, 3 deploy steps, HUP, prove
#      every worker replaced and /healthz serving the release (bench/w1-reload.yml
#      vs bench/openssh/w1-reload.sh); a row for herd's default path, then one
#      with both sides tuned
#   W2 fan-out: 5 separate steps on every host at once (bench/w2-fanout.yml
#      vs bench/openssh/w2-fanout.sh, ControlMaster reuse)
#   W3 scale: one command on every host at once (herd exec vs bench/openssh/w3-scale.sh)
#   W4 artifact fan-out: a tarball of random data shipped to every host at once
#      (bench/w4-artifact.yml, an `upload` step, vs bench/openssh/w4-artifact.sh,
#      one scp per host through xargs -P); the sha256 checked on every host.
#      Also herd's peak RSS with a 4x bigger file, and a re-run that finds the
#      content on every host (must send 0 bytes), against the run that sent it.
#
# Every run is checked on the hosts afterwards (files, master and worker PIDs,
# HTTP answers) by bench/bench.py; a run that did not do the work is FAIL and
# the script exits 1. Results table on stdout, progress on stderr.
#
#   bench/run.sh                      full size: W1 20 hosts, W2 200, W3 1000, W4 50 (50 MB)
#   BENCH_SCALE=tiny bench/run.sh     CI size: W1 4 hosts, W2 10, W3 20, W4 4 (5 MB), one run each
# Knobs: BENCH_RUNS (W1/W2/W4 runs, median taken; default 3), BENCH_W3_RUNS (1),
# BENCH_ONLY="w1 w2 w3 w4", BENCH_W1_HOSTS, BENCH_W1_BATCH, BENCH_W2_HOSTS,
# BENCH_W3_HOSTS, BENCH_W4_HOSTS, BENCH_W4_MB (the tarball; the RSS run ships 4x),
# BENCH_KEEP=1 (keep the work directory with every event log),
# W1_POLL (seconds between the OpenSSH script's looks after HUP in the default
# W1 row; 0.25; the tuned row polls every 0.05).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD

case "${BENCH_SCALE:-full}" in
full) w1_hosts=20 w1_batch=5 w2_hosts=200 w3_hosts=1000 w4_hosts=50 w4_mb=50 runs=3 ;;
tiny) w1_hosts=4 w1_batch=2 w2_hosts=10 w3_hosts=20 w4_hosts=4 w4_mb=5 runs=1 ;;
*) echo "bench: BENCH_SCALE is full or tiny, not ${BENCH_SCALE}" >&2; exit 2 ;;
esac
w1_hosts=${BENCH_W1_HOSTS:-$w1_hosts} w1_batch=${BENCH_W1_BATCH:-$w1_batch}
w2_hosts=${BENCH_W2_HOSTS:-$w2_hosts} w3_hosts=${BENCH_W3_HOSTS:-$w3_hosts}
w4_hosts=${BENCH_W4_HOSTS:-$w4_hosts} w4_mb=${BENCH_W4_MB:-$w4_mb}
runs=${BENCH_RUNS:-$runs} w3_runs=${BENCH_W3_RUNS:-1}
only=" ${BENCH_ONLY:-w1 w2 w3 w4} "

say() { printf 'bench: %s\n' "$*" >&2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }
bench() { python3 "$repo/bench/bench.py" "$@"; }
field() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
mib() { awk -v kb="$(field "$1" rss_kb)" 'BEGIN { printf "%.1f", kb / 1024 }'; }

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

# W1: rolling reload on Gunicorn hosts, twice on the same lab: herd's
# default path against the OpenSSH script's careful poll, then both sides
# at their fastest settings (herd `settle: 0s`, which its boot proof makes
# its default anyway; the OpenSSH script polling every 50 ms).
w1() {
    local lab="$work/w1"
    lab_up "$lab" "$w1_hosts"
    w1_rows "W1 reload b=$w1_batch" default bench/w1-reload.yml "${W1_POLL:-0.25}"
    sed 's/^  timeout: 60s$/  timeout: 60s\n  settle: 0s/' bench/w1-reload.yml >"$work/w1-tuned.yml"
    grep -q '^  settle: 0s$' "$work/w1-tuned.yml" || { say "W1 tuned: no settle set"; exit 1; }
    w1_rows "W1 tuned b=$w1_batch" tuned "$work/w1-tuned.yml" 0.05
    lab_down "$lab"
}

# w1_rows LABEL TAG PLAYBOOK POLL: the W1 runs of one variant, and its row.
w1_rows() {
    local label=$1 tag=$2 playbook=$3 poll=$4 lab="$work/w1" herd_files="" ssh_files="" verified="ok" run rel
    for ((run = 1; run <= runs; run++)); do
        rel=$(printf 'herd-%s-r%02d' "$tag" "$run")
        say "W1 $tag run $run/$runs: herd run --batch $w1_batch on $w1_hosts hosts (release $rel)"
        bench workers "$lab" "$work/w1-before.json"
        bench measure "$work/w1-$tag-herd-$run.json" --events "$work/w1-$tag-herd-$run.events" -- \
            "$herd" run "$playbook" -i "$lab/inventory.yml" -e "release=$rel" \
            --batch "$w1_batch" --forks "$w1_hosts" --no-agent --output json 2>"$work/w1-$tag-herd-$run.err"
        check "W1 $tag herd" "$work/w1-$tag-herd-$run.json" bench verify-w1 "$lab" "$work/w1-before.json" "$rel" || verified=FAIL
        details+=("W1 $tag herd run $run phases: $(bench phases "$work/w1-$tag-herd-$run.events" "$(field "$work/w1-$tag-herd-$run.json" wall)")")
        herd_files+=" $work/w1-$tag-herd-$run.json"

        rel=$(printf 'ssh-%s-r%02d' "$tag" "$run")
        say "W1 $tag run $run/$runs: OpenSSH script, batches of $w1_batch, polling every ${poll}s (release $rel)"
        bench workers "$lab" "$work/w1-before.json"
        W1_POLL=$poll bench measure "$work/w1-$tag-ssh-$run.json" -- \
            bench/openssh/w1-reload.sh "$lab/hosts.txt" "$rel" "$w1_batch" 2>"$work/w1-$tag-ssh-$run.err"
        close_masters
        check "W1 $tag OpenSSH" "$work/w1-$tag-ssh-$run.json" bench verify-w1 "$lab" "$work/w1-before.json" "$rel" || verified=FAIL
        ssh_files+=" $work/w1-$tag-ssh-$run.json"
    done
    record "$label" "$w1_hosts" "$herd_files" "$ssh_files" "$verified"
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

# tarball DIR MB: DIR/w4-artifact.tar, a tar of MB of random data (which
# gzip would not shrink), and the W4 playbook beside it.
tarball() {
    local dir=$1 mb=$2
    mkdir -p "$dir/data"
    head -c $((mb << 20)) /dev/urandom >"$dir/data/blob.bin"
    tar -C "$dir/data" -cf "$dir/w4-artifact.tar" .
    rm -rf "$dir/data"
    cp bench/w4-artifact.yml "$dir/"
}

# w4_herd DIR LAB OUT: one herd run shipping DIR's tarball to every host.
w4_herd() {
    bench measure "$3.json" --events "$3.events" -- \
        "$herd" run "$1/w4-artifact.yml" -i "$2/inventory.yml" \
        --batch 100% --forks "$w4_hosts" --no-agent --output json 2>"$3.err"
}

# W4: one tarball to every host at once.
w4() {
    local lab="$work/w4" herd_files="" ssh_files="" verified="ok" run art="$work/w4-art" big="$work/w4-big"
    local name=bench-w4.tar sent rerun first
    lab_up "$lab" "$w4_hosts" --no-app
    tarball "$art" "$w4_mb"
    for ((run = 1; run <= runs; run++)); do
        say "W4 run $run/$runs: OpenSSH, $w4_hosts scp at once (xargs -P), ${w4_mb} MB"
        bench clear-w4 "$lab" "$name"
        bench measure "$work/w4-ssh-$run.json" -- \
            bench/openssh/w4-artifact.sh "$lab/hosts.txt" "$art/w4-artifact.tar" "$name" 2>"$work/w4-ssh-$run.err"
        check "W4 OpenSSH" "$work/w4-ssh-$run.json" bench verify-w4 "$lab" "$art/w4-artifact.tar" "$name" || verified=FAIL
        ssh_files+=" $work/w4-ssh-$run.json"

        # The hosts must not hold the content already, or herd rightly sends nothing.
        say "W4 run $run/$runs: herd run, upload to $w4_hosts hosts at once, ${w4_mb} MB"
        bench clear-w4 "$lab" "$name"
        w4_herd "$art" "$lab" "$work/w4-herd-$run"
        check "W4 herd" "$work/w4-herd-$run.json" bench verify-w4 "$lab" "$art/w4-artifact.tar" "$name" || verified=FAIL
        sent=$(bench transfer "$work/w4-herd-$run.events")
        details+=("W4 herd run $run: sent $sent; phases: $(bench phases "$work/w4-herd-$run.events" "$(field "$work/w4-herd-$run.json" wall)")")
        herd_files+=" $work/w4-herd-$run.json"
    done

    # The hosts hold what the last herd run sent: a re-run must send nothing.
    say "W4 re-run: herd run again, every host has the tarball"
    w4_herd "$art" "$lab" "$work/w4-rerun"
    check "W4 herd re-run" "$work/w4-rerun.json" bench verify-w4 "$lab" "$art/w4-artifact.tar" "$name" || verified=FAIL
    sent=$(bench transfer "$work/w4-rerun.events")
    first=$(field "$work/w4-herd-$runs.json" wall)
    rerun=$(field "$work/w4-rerun.json" wall)
    if ! python3 -c "import json, sys; t = json.loads(sys.argv[1]); sys.exit(not (t['bytes'] == 0 and t['unchanged'] == t['hosts'] == int(sys.argv[2])))" "$sent" "$w4_hosts"; then
        failures=$((failures + 1))
        verified=FAIL
        details+=("W4 herd re-run: did not find the content on every host: $sent")
    fi
    details+=("W4 re-run (same content on every host): $(python3 -c "import sys; r, f = float(sys.argv[1]), float(sys.argv[2]); print(f'{r:.2f}s = {100 * r / f:.1f}% of the run that sent it ({f:.2f}s; target at full size: < 5%)')" "$rerun" "$first"); sent $sent; phases: $(bench phases "$work/w4-rerun.events" "$rerun")")
    # What reaching these hosts at all costs, beside the re-run: one trivial
    # command on every host, by herd and by OpenSSH (the W3 script). The
    # host's sshd pays for each connection, so no re-run goes below these.
    say "W4 floor: one trivial command on the same $w4_hosts hosts (herd exec, then OpenSSH)"
    bench measure "$work/w4-floor-herd.json" --events "$work/w4-floor-herd.events" -- \
        "$herd" exec -i "$lab/inventory.yml" --forks "$w4_hosts" --no-agent --output json \
        -- 'echo {{ inventory_hostname }}' 2>"$work/w4-floor-herd.err"
    check "W4 floor herd" "$work/w4-floor-herd.json" bench exec-results "$lab" "$work/w4-floor-herd.events" || verified=FAIL
    mkdir -p "$work/w4-floor-ssh"
    bench measure "$work/w4-floor-ssh.json" -- \
        bench/openssh/w3-scale.sh "$lab/hosts.txt" "$work/w4-floor-ssh" 2>"$work/w4-floor-ssh.err"
    check "W4 floor OpenSSH" "$work/w4-floor-ssh.json" bench verify-w3 "$lab/hosts.txt" "$work/w4-floor-ssh" || verified=FAIL
    details+=("W4 floor (one trivial command on the same hosts, no upload): $(python3 -c "import sys; h, s, f = map(float, sys.argv[1:]); print(f'herd exec {h:.2f}s = {100 * h / f:.1f}%, OpenSSH {s:.2f}s = {100 * s / f:.1f}% of the run that sent it')" "$(field "$work/w4-floor-herd.json" wall)" "$(field "$work/w4-floor-ssh.json" wall)" "$first")")
    bench clear-w4 "$lab" "$name"

    say "W4 RSS: herd run with a $((4 * w4_mb)) MB tarball to $w4_hosts hosts"
    tarball "$big" $((4 * w4_mb))
    w4_herd "$big" "$lab" "$work/w4-big"
    check "W4 herd $((4 * w4_mb)) MB" "$work/w4-big.json" bench verify-w4 "$lab" "$big/w4-artifact.tar" "$name" || verified=FAIL
    # shellcheck disable=SC2086
    bench median $herd_files >"$work/w4-herd-median.json"
    details+=("W4 herd peak RSS against the file's size: ${w4_mb} MB $(mib "$work/w4-herd-median.json") MiB (median of $runs), $((4 * w4_mb)) MB $(mib "$work/w4-big.json") MiB (one run, $(field "$work/w4-big.json" wall | cut -c1-5)s)")
    bench clear-w4 "$lab" "$name"
    rm -rf "$big"
    lab_down "$lab"
    record "W4 upload ${w4_mb}MB" "$w4_hosts" "$herd_files" "$ssh_files" "$verified"
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
for workload in w1 w2 w3 w4; do
    case "$only" in *" $workload "*) "$workload" ;; esac
done

echo "herd benchmark ($(date -u +%Y-%m-%dT%H:%MZ), BENCH_SCALE=${BENCH_SCALE:-full})"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), $(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "herd: $("$herd" --version) ($herd); $(ssh -V 2>&1); gunicorn $("$HERD_LAB_VENV/bin/gunicorn" --version 2>/dev/null | awk '{print $NF}' | tr -d ')')"
echo "lab up: ${lab_times:-none}total bench time $(since "$started")s"
echo "runs: W1/W2/W4 median of $runs, W3 $w3_runs; W1: herd's default validate (every new worker proves it booted, no settle), no preflight;"
echo "  after HUP the OpenSSH script polls every ${W1_POLL:-0.25}s, herd's host-side wait looks every 40ms;"
echo "  W1 tuned: herd with settle: 0s (the same as its default), the OpenSSH script polling every 0.05s"
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
