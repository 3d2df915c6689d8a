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

# The nats-server binary: PATH, else Debian's /usr/sbin (not on a normal user's PATH).
nats_server_bin() {
    if command -v nats-server 2>/dev/null; then
        return 0
    fi
    [[ -x /usr/sbin/nats-server ]] && echo /usr/sbin/nats-server
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
