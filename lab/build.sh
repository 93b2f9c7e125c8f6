#!/bin/sh
# Build the lab agent (a Consul stand-in for LAN gossip) offline from Debian's
# Go toolchain and Go source packages, in GOPATH mode.
#   lab/build.sh            -> lab/bin/tsegossip-lab-agent
#   lab/build.sh OUTPUT     -> OUTPUT
# Installs golang-go + serf/memberlist sources with apt when missing (needs root).
set -eu
LAB_DIR=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-"$LAB_DIR/bin/tsegossip-lab-agent"}
PKGS="golang-go golang-github-hashicorp-serf-dev golang-github-hashicorp-memberlist-dev"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "build.sh: installing$missing" >&2
    if [ "$(id -u)" != 0 ]; then
        echo "build.sh: need root to apt-get install$missing" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq $missing >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq $missing >/dev/null
    fi
fi

GO=$(command -v go || echo /usr/lib/go/bin/go)
# GOPATH mode: a private GOPATH holding a symlink to the agent package, then
# Debian's /usr/share/gocode for serf, memberlist and their dependencies.
GP="$LAB_DIR/.gopath"
mkdir -p "$GP/src/tsegossip" "$(dirname "$OUT")"
ln -sfn "$LAB_DIR/agent" "$GP/src/tsegossip/labagent"
GOCACHE=${GOCACHE:-"$LAB_DIR/.gocache"}
export GOCACHE
GO111MODULE=off GOFLAGS= GOPATH="$GP:/usr/share/gocode" "$GO" build -o "$OUT.tmp.$$" tsegossip/labagent
mv -f "$OUT.tmp.$$" "$OUT"
