#!/usr/bin/env bash
# bench W3 with plain OpenSSH: one command on every host, all at once. One
# command per host gains nothing from ControlMaster, so CM_DIR is not used.
# Each host's stdout goes to OUT_DIR/NAME, stderr to OUT_DIR/NAME.err.
#   w3-scale.sh HOSTS_FILE OUT_DIR
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
hosts_file=$1 out_dir=$2
unset CM_DIR
load_hosts "$hosts_file"
pids=()
for i in "${!H_NAME[@]}"; do
    on_host "$i" "echo $(q "${H_NAME[$i]}")" >"$out_dir/${H_NAME[$i]}" 2>"$out_dir/${H_NAME[$i]}.err" &
    pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
[ "$failed" -eq 0 ] || { echo "w3-scale: $failed of ${#H_NAME[@]} ssh commands failed" >&2; exit 1; }
