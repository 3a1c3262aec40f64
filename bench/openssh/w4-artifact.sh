#!/usr/bin/env bash
# bench W4 with plain OpenSSH: one file copied to every host at once, one
# scp per host, all of them in parallel through `xargs -P`, to the same path
# herd writes (APP_DIR/NAME). A single copy per host gains nothing from
# ControlMaster, so CM_DIR is not used.
#   w4-artifact.sh HOSTS_FILE SRC NAME
set -euo pipefail
hosts_file=$1 src=$2 name=$3
count=$(wc -l <"$hosts_file")
# Each hosts-file line is: name addr ssh_port http_port app_dir pidfile user key known_hosts
xargs -P "$count" -n 9 sh -c '
    src=$1 name=$2; shift 2
    scp -q -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$8" \
        -o UserKnownHostsFile="$9" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=10 -o LogLevel=ERROR -P "$3" \
        "$src" "$7@$2:$5/$name" || { echo "w4-artifact: scp to $1 failed" >&2; exit 1; }
' w4-artifact "$src" "$name" <"$hosts_file"
