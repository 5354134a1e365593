#!/usr/bin/env bash
#  Install the Debian packages partnerbus needs to build, run and test.
#  Idempotent and non-interactive: safe to run on every CI start.
set -euo pipefail

PKGS=(
    build-essential cmake pkg-config
    libzmq3-dev libczmq-dev libsodium-dev libmsgpack-dev liblmdb-dev lmdb-utils
    python3 python3-zmq python3-msgpack libjansson-dev libmicrohttpd-dev
    clang libclang-rt-14-dev fiu-utils valgrind
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#PKGS[@]} packages present"
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
