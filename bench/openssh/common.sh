# Shared by the plain-OpenSSH baselines of bench/run.sh: how to reach a lab
# host with the OpenSSH client, as a careful shell script would. Sourced.
#
# Hosts come from `bench.py hosts LAB_DIR`, one line each:
#   name addr ssh_port http_port app_dir pidfile user key known_hosts
# CM_DIR (optional): where ControlMaster sockets go; set, every ssh to a host
# after the first reuses that host's one connection (ControlPersist keeps it
# open, and run.sh closes the masters after the timed region).

# Single-quotes a word for the remote /bin/sh.
q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# ssh_to ADDR PORT USER KEY KNOWN_HOSTS COMMAND
ssh_to() {
    local addr=$1 port=$2 user=$3 key=$4 known_hosts=$5 command=$6
    local opts=(-F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -i "$key"
        -o UserKnownHostsFile="$known_hosts" -o StrictHostKeyChecking=yes
        -o ConnectTimeout=10 -o LogLevel=ERROR -p "$port" -l "$user")
    if [ -n "${CM_DIR:-}" ]; then
        opts+=(-o ControlMaster=auto -o ControlPath="$CM_DIR/%C" -o ControlPersist=60)
    fi
    ssh "${opts[@]}" "$addr" "$command"
}

# Reads a hosts file into the arrays H_NAME H_ADDR H_PORT H_HTTP H_APP H_PID H_USER H_KEY H_KH.
load_hosts() {
    H_NAME=() H_ADDR=() H_PORT=() H_HTTP=() H_APP=() H_PID=() H_USER=() H_KEY=() H_KH=()
    local name addr port http app pidfile user key kh
    while read -r name addr port http app pidfile user key kh; do
        H_NAME+=("$name") H_ADDR+=("$addr") H_PORT+=("$port") H_HTTP+=("$http")
        H_APP+=("$app") H_PID+=("$pidfile") H_USER+=("$user") H_KEY+=("$key") H_KH+=("$kh")
    done <"$1"
}

# on_host I COMMAND: runs COMMAND on the I-th host of the loaded hosts file.
on_host() {
    ssh_to "${H_ADDR[$1]}" "${H_PORT[$1]}" "${H_USER[$1]}" "${H_KEY[$1]}" "${H_KH[$1]}" "$2"
}
