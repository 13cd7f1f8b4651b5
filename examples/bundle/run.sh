#!/bin/sh
# Kairos bundle (run://): installs kairos-p2p onto /usr/local, which Kairos keeps across
# reboots and upgrades. kairos-agent runs this from the unpacked bundle before it sends
# agent.bootstrap to the providers, so agent-provider-kairos-p2p answers on this boot.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
tarball=$here/kairos-p2p.tar.gz
prefix=${KAIROS_P2P_PREFIX:-/usr/local}

if [ ! -f "$tarball" ]; then
  echo "kairos-p2p bundle: $tarball is missing; build the bundle with the artefact copied to kairos-p2p.tar.gz" >&2
  exit 1
fi
for rival in /system/providers/agent-provider-kairos /usr/local/system/providers/agent-provider-kairos; do
  if [ -e "$rival" ]; then
    echo "kairos-p2p bundle: $rival is installed too; kairos-p2p will stand aside until the image is built without it (see INSTALL)" >&2
  fi
done
mkdir -p "$prefix"
tar -xzf "$tarball" --strip-components=1 --no-same-owner -C "$prefix"
"$prefix/bin/kairos-p2p" --version
