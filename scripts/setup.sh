#!/usr/bin/env bash
# Prepare a machine for `herd lab`: OpenSSH (sshd, ssh-keygen) and a Python
# venv at the repository root with Gunicorn (and ansible-core, which the
# tests compare herd's inventories with) in it. Idempotent: every step
# checks first and does nothing when it is already done. Runs as root or as a
# plain user with sudo (Debian/Ubuntu, apt-get).
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HERD_LAB_VENV:-$repo_root/.venv}"

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    sudo=()
fi

apt_updated=0
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        say "apt-get not found: install $* with your package manager, then run this again"
        exit 1
    fi
    if [ "$(id -u)" -ne 0 ] && [ ${#sudo[@]} -eq 0 ]; then
        say "need root to install $*: run this as root or install sudo"
        exit 1
    fi
    if [ "$apt_updated" -eq 0 ]; then
        say "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        apt_updated=1
    fi
    say "apt-get install $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

# OpenSSH: the lab runs /usr/sbin/sshd by absolute path. sudo: the tests
# check that `become` on a host where sudo wants a password fails at once.
missing=()
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null 2>&1; then
    missing+=(openssh-server openssh-client)
fi
if ! command -v sudo >/dev/null 2>&1; then
    missing+=(sudo)
fi
if [ ${#missing[@]} -eq 0 ]; then
    say "openssh, sudo: already installed"
else
    apt_install "${missing[@]}"
fi

# The system interpreter, not a per-user one (pyenv under /root): as root the
# lab runs Gunicorn as an unprivileged account, which must be able to reach it.
if [ ! -x /usr/bin/python3 ] && ! command -v python3 >/dev/null 2>&1; then
    apt_install python3 python3-venv
fi
if [ -x /usr/bin/python3 ]; then python=/usr/bin/python3; else python="$(command -v python3)"; fi

# The venv: python3 -m venv needs ensurepip, which Debian ships separately.
# A venv left half-made by an earlier run (no pip) is made again.
venv_ok() { [ -x "$venv/bin/python" ] && "$venv/bin/python" -m pip --version >/dev/null 2>&1; }
if venv_ok; then
    say "venv: $venv already exists"
else
    if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
        say "$venv exists and is not a venv: move it away (or set HERD_LAB_VENV), then run this again"
        exit 1
    fi
    if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        pyver="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
        # The versioned package is the one that carries ensurepip on Debian 12+.
        apt_install python3-venv "python${pyver}-venv" || apt_install python3-venv
    fi
    say "venv: creating $venv"
    "$python" -m venv --clear "$venv"
fi

# setproctitle gives Gunicorn its `gunicorn: master [NAME]` titles; the lab
# turns it off on every other host so both ways of finding a master are used.
if [ -x "$venv/bin/gunicorn" ] && "$venv/bin/python" -c 'import setproctitle' >/dev/null 2>&1; then
    say "gunicorn, setproctitle: already in $venv"
else
    say "gunicorn, setproctitle: pip install into $venv"
    "$venv/bin/python" -m pip install -q gunicorn setproctitle >&2
fi

# ansible-core: tests/ansible_diff.rs reads its inventories and --limit
# patterns with Ansible itself and compares. From PyPI, the only network CI has.
ansible_ok() {
    [ -x "$venv/bin/ansible-inventory" ] && [ -x "$venv/bin/ansible" ] &&
        "$venv/bin/python" -c 'import sys, ansible.release as r; sys.exit(not r.__version__.startswith("2.19."))' >/dev/null 2>&1
}
if ansible_ok; then
    say "ansible-core 2.19: already in $venv"
else
    say "ansible-core 2.19: pip install into $venv"
    "$venv/bin/python" -m pip install -q 'ansible-core==2.19.*' >&2
fi

# Container hosts (`herd lab up --container-hosts N`, root only): the
# machine's rootful Podman with runc (crun refuses a hybrid cgroup layout),
# catatonit for `podman run --init`, and mmdebstrap, which builds the image's
# rootfs offline from the apt mirror (the lab does that on first use and
# caches it in /var/tmp/herd-lab). Optional: without them the container
# tests say why and skip.
container_missing=()
for tool in podman:/usr/bin/podman runc:/usr/sbin/runc mmdebstrap:/usr/bin/mmdebstrap catatonit:/usr/bin/catatonit; do
    [ -x "${tool#*:}" ] || container_missing+=("${tool%%:*}")
done
if [ ${#container_missing[@]} -eq 0 ]; then
    say "podman, runc, mmdebstrap, catatonit: already installed"
elif ! (apt_install "${container_missing[@]}"); then
    say "could not install ${container_missing[*]}: the lab runs no container hosts here"
fi

# The other app servers (`herd lab up --servers gunicorn,uwsgi,unicorn,puma,nginx`):
# Debian's uWSGI with its Python 3 plugin, Unicorn, Puma and nginx-light, which
# the lab runs as its login user on its own addresses. The system's nginx
# service is neither needed nor started: while the packages install, a
# policy-rc.d (unless the machine has one) keeps their maintainer scripts from
# starting services, and on a machine booted with systemd the nginx unit they
# enable is disabled again.
server_missing=()
for tool in uwsgi-core:/usr/bin/uwsgi-core uwsgi-plugin-python3:/usr/lib/uwsgi/plugins/python3_plugin.so \
    unicorn:/usr/bin/unicorn puma:/usr/bin/puma nginx-light:/usr/sbin/nginx; do
    [ -e "${tool#*:}" ] || server_missing+=("${tool%%:*}")
done
if [ ${#server_missing[@]} -eq 0 ]; then
    say "uwsgi, unicorn, puma, nginx: already installed"
else
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# herd setup: no service starts while app servers install\nexit 101\n' |
            "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        trap '"${sudo[@]}" rm -f "$policy"' EXIT
    fi
    apt_install "${server_missing[@]}"
    if [[ " ${server_missing[*]} " == *" nginx-light "* ]] && [ -d /run/systemd/system ]; then
        say "systemctl disable nginx (the lab runs its own)"
        "${sudo[@]}" systemctl disable --now nginx >&2 || true
    fi
fi

say "ready: herd lab up --hosts 3"

