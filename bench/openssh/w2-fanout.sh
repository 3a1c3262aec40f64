#!/usr/bin/env bash
# bench W2 with plain OpenSSH: the five steps of bench/w2-fanout.yml as five
# ssh commands per host, every host at once.
#   CM_DIR=/tmp/cm w2-fanout.sh HOSTS_FILE RUN_ID
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
hosts_file=$1 run_id=$2
load_hosts "$hosts_file"

fan_out_host() {
    local i=$1 out="${H_APP[$1]}/bench-w2/$run_id"
    local write="printf '%s\n' $(q "$run_id") >"
    on_host "$i" "mkdir -p $(q "$out") && $write $(q "$out/step1")" &&
        on_host "$i" "$write $(q "$out/step2")" &&
        on_host "$i" "$write $(q "$out/step3")" &&
        on_host "$i" "$write $(q "$out/step4")" &&
        on_host "$i" "$write $(q "$out/step5")"
}

pids=()
for i in "${!H_NAME[@]}"; do
    fan_out_host "$i" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || { echo "w2-fanout: $failed host(s) failed" >&2; exit 1; }
