#!/usr/bin/env bash
# tests/incus/setup.sh: a real Incus daemon for the `incus` tests, on a Debian 12
# machine, idempotently (a prepared machine needs no network):
#   1. incus from bookworm-backports (mirror taken from the machine's own apt
#      sources, never hard-coded) and busybox-static for a tiny image;
#   2. incusd started when it does not answer (no systemd needed);
#   3. a `dir` storage pool and default profile, a `busybox` image built locally
#      (no image server is needed);
#   4. https on 127.0.0.1:8443 (for the TLS tests) and projects `pro` and `perso` (the security domains of the tests) with
#      containers pro/pro-dev (running), pro/pro-stopped (stopped) and
#      perso/perso-dev (running).
# Exit 0 when Incus is ready, 77 when this machine cannot have it (not root and
# no password-less sudo, or no apt), 1 on a real failure.
set -euo pipefail

log() { echo "incus-setup: $*" >&2; }
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then sudo="sudo -n"; else log "not root and no password-less sudo: skipping"; exit 77; fi
fi
state_log=${INCUSD_LOG:-/var/log/warden-test-incusd.log}

# ---- 1. packages ----
# Prints the URI of the Debian archive (not -security) the machine's apt
# sources already use, from deb822 *.sources files or one-line sources.list.
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; suites = ""; enabled = 1
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) { suites = $i; sub(/^Suites:[ \t]*/, "", suites) }
          if ($i ~ /^Enabled:[ \t]*no/) enabled = 0
        }
        if (enabled && suites ~ /(^| )bookworm( |$)/) { split(uris, u, " "); print u[1]; exit }
      }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/) { if ($(i+1) == "bookworm") print $i; break } }' "$f"
  done
}

# incus-base has incusd and (through incus-client) the CLI; the `incus`
# package would add VM support, i.e. qemu, which containers do not need.
need=()
command -v incus >/dev/null && [ -x /usr/libexec/incus/incusd ] || need+=(incus-base)
[ -x /bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "no apt-get: cannot install ${need[*]}"; exit 77; }
  export DEBIAN_FRONTEND=noninteractive
  if [[ " ${need[*]} " == *" incus-base "* ]] && ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    mirror=$(debian_mirror | head -n1)
    [ -n "$mirror" ] || { log "cannot find the Debian mirror in the apt sources"; exit 1; }
    log "adding bookworm-backports from $mirror"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | $sudo tee /etc/apt/sources.list.d/warden-bookworm-backports.sources >/dev/null
  fi
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  # No recommends: they pull qemu and more; containers need none of it.
  $sudo apt-get install -y -qq --no-install-recommends -t bookworm-backports "${need[@]}" >&2
fi

# ---- 2. the daemon ----
if ! $sudo incus admin waitready --timeout 1 >/dev/null 2>&1; then
  log "starting incusd (log: $state_log)"
  $sudo mkdir -p /var/lib/incus /var/log/incus
  $sudo sh -c "setsid /usr/libexec/incus/incusd --group root </dev/null >>'$state_log' 2>&1 &"
  $sudo incus admin waitready --timeout 60 || { log "incusd did not start:"; tail -n 30 "$state_log" >&2; exit 1; }
fi

# ---- 3. storage, profile, image ----
if ! $sudo incus storage show default >/dev/null 2>&1; then
  log "initialising (dir storage pool, default profile)"
  # --minimal fails without a free subnet for a bridge; the containers need no network.
  $sudo incus admin init --preseed <<'YAML'
storage_pools: [{name: default, driver: dir}]
profiles: [{name: default, devices: {root: {path: /, pool: default, type: disk}}}]
YAML
fi
if ! $sudo incus image show busybox >/dev/null 2>&1; then
  log "building the busybox image"
  r=$(mktemp -d)
  trap 'rm -rf "$r"' EXIT
  mkdir -p "$r"/rootfs/{bin,sbin,etc,proc,sys,dev,tmp,root,run}
  cp /bin/busybox "$r/rootfs/bin/"
  for a in sh ls cat echo id hostname sleep env ps kill pwd head yes dd true false tr wc; do ln -s busybox "$r/rootfs/bin/$a"; done
  printf '#!/bin/sh\nwhile true; do sleep 3600; done\n' >"$r/rootfs/sbin/init"
  chmod +x "$r/rootfs/sbin/init"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' >"$r/rootfs/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$r/rootfs/etc/group"
  printf 'architecture: %s\ncreation_date: %s\nproperties: {os: busybox}\n' "$(uname -m)" "$(date +%s)" >"$r/metadata.yaml"
  tar -C "$r" -cf "$r/meta.tar" metadata.yaml
  tar -C "$r/rootfs" -cf "$r/rootfs.tar" .
  $sudo incus image import "$r/meta.tar" "$r/rootfs.tar" --alias busybox >/dev/null
fi

# ---- 4. domains and instances ----
for p in pro perso; do
  $sudo incus project show "$p" >/dev/null 2>&1 ||
    $sudo incus project create "$p" -c features.images=false -c features.profiles=false >/dev/null
done
ensure() {  # ensure PROJECT NAME running|stopped
  local p=$1 n=$2 want=$3 state
  if ! $sudo incus info "$n" --project "$p" >/dev/null 2>&1; then
    log "creating $p/$n"
    $sudo incus init busybox "$n" --project "$p" >/dev/null
  fi
  state=$($sudo incus list "$n" --project "$p" -c s -f csv | head -n1)
  if [ "$want" = running ] && [ "$state" != RUNNING ]; then $sudo incus start "$n" --project "$p"; fi
  if [ "$want" = stopped ] && [ "$state" != STOPPED ]; then $sudo incus stop -f "$n" --project "$p"; fi
}
ensure pro pro-dev running
ensure pro pro-stopped stopped
ensure perso perso-dev running
# The TLS tests reach the same daemon over https on loopback.
[ -n "$($sudo incus config get core.https_address)" ] || $sudo incus config set core.https_address 127.0.0.1:8443
log "ready: $($sudo incus list --all-projects -c ns -f csv | tr '\n' ' ')"
