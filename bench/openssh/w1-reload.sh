#!/usr/bin/env bash
# bench W1 with plain OpenSSH: the rolling reload of bench/w1-reload.yml as a
# shell script. Batch after batch (hosts of a batch in parallel), per host:
# three ssh commands for the deploy steps, then one that HUPs the master from
# its pidfile, polls /proc every W1_POLL seconds (default 0.25, a careful
# script's choice) until every old worker is gone and as many new ones run,
# then polls /healthz until it serves the release. A failed host stops the
# rollout after its batch.
#   CM_DIR=/tmp/cm [W1_POLL=0.25] w1-reload.sh HOSTS_FILE RELEASE BATCH_SIZE
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
hosts_file=$1 release=$2 batch=$3 poll=${W1_POLL:-0.25}
load_hosts "$hosts_file"

reload_script() { # pidfile url
    cat <<SH
pidfile=$(q "$1") url=$(q "$2") rel=$(q "$release")
pid=\$(cat "\$pidfile") || exit 1
old=\$(pgrep -P "\$pid" | tr '\n' ' ')
n=\$(echo \$old | wc -w)
kill -HUP "\$pid" || exit 1
end=\$((\$(date +%s) + 60))
while :; do
    kill -0 "\$pid" 2>/dev/null || { echo "master \$pid exited after HUP" >&2; exit 1; }
    now=" \$(pgrep -P "\$pid" | tr '\n' ' ')"
    left=0
    for w in \$old; do case "\$now" in *" \$w "*) left=1 ;; esac; done
    [ "\$left" = 0 ] && [ "\$(echo \$now | wc -w)" = "\$n" ] && break
    [ "\$(date +%s)" -ge "\$end" ] && { echo "workers not replaced:\$now" >&2; exit 1; }
    sleep $poll
done
until curl -fsS --max-time 5 "\$url" 2>/dev/null | grep -qw -- "\$rel"; do
    [ "\$(date +%s)" -ge "\$end" ] && { echo "\$url does not serve \$rel" >&2; exit 1; }
    sleep $poll
done
SH
}

deploy_host() {
    local i=$1 app=${H_APP[$1]}
    local dir="$app/releases/$release"
    on_host "$i" "mkdir -p $(q "$dir") && cp $(q "$app/current/app.py") $(q "$dir/app.py")" &&
        on_host "$i" "printf '%s\n' $(q "$release") > $(q "$dir/RELEASE")" &&
        on_host "$i" "ln -sfn $(q "$dir") $(q "$app/current.next") && mv -T $(q "$app/current.next") $(q "$app/current")" &&
        on_host "$i" "$(reload_script "${H_PID[$i]}" "http://${H_ADDR[$i]}:${H_HTTP[$i]}/healthz")"
}

count=${#H_NAME[@]}
for ((start = 0; start < count; start += batch)); do
    pids=()
    for ((i = start; i < start + batch && i < count; i++)); do
        deploy_host "$i" &
        pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "$pid" || failed=$((failed + 1)); done
    if [ "$failed" -gt 0 ]; then
        echo "w1-reload: $failed host(s) failed in the batch starting at host $((start + 1)): rollout stopped" >&2
        exit 1
    fi
done
