#!/usr/bin/env bash
# The whole story on a built-in example, end to end, on this machine:
#   1. build os-update and os-updated
#   2. make a signing key, commit version 1 of an example OS, sign it,
#      publish a signed summary, serve the repository over HTTP (loopback)
#   3. install a sysroot from it (init-fs, os-init, remote, pull, deploy)
#   4. start os-updated on a private D-Bus bus
#   5. publish version 2 with a static delta, `os-update upgrade`, `status`,
#      `rollback`, `status`, and let the reference ostree read the result
# Everything lives in one work directory (DEMO_DIR, default a new temp dir);
# DEMO_CLEAN=1 removes it at the end. Its deployments are immutable, so
# removing it by hand takes `chattr -i DIR/sysroot/ostree/deploy/*/deploy/*/` first
# (the demo prints the command).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -eq 0 ]; then scripts/deps.sh; fi
work=${DEMO_DIR:-$(mktemp -d /tmp/os-update-demo.XXXXXX)}
mkdir -p "$work"
bin=$work/bin
mkdir -p "$bin"
go build -o "$bin/os-update" ./cmd/os-update
go build -o "$bin/os-updated" ./cmd/os-updated
osu=$bin/os-update
pids=()
# cleanup stops what the demo started: its servers, and the gpg-agent that
# gpg started for the demo's key (GNUPGHOME is the demo's own).
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${GNUPGHOME:-}" ] && [ -d "$GNUPGHOME" ]; then gpgconf --kill all 2>/dev/null || true; fi
  if [ "${DEMO_CLEAN:-0}" = 1 ]; then remove_work; fi
}
# remove_work deletes the work directory; deployments are immutable
# (chattr +i, as libostree makes them), so that goes first.
remove_work() {
  unlock_deployments "$work/sysroot"
  rm -rf "$work"
}
# unlock_deployments SYSROOT clears the immutable flag of its deployments.
unlock_deployments() {
  if [ -d "$1/ostree/deploy" ]; then
    find "$1/ostree/deploy" -mindepth 3 -maxdepth 3 -type d -exec chattr -i {} + 2>/dev/null || true
  fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a signing key (gpg, no passphrase) in $work/gnupg"
export GNUPGHOME=$work/gnupg
rm -rf "$GNUPGHOME"; mkdir -m 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'Example OS <os@example.invalid>' ed25519 sign never
gpg --batch --quiet --export-secret-keys > "$work/secret.gpg"
gpg --batch --quiet --export > "$work/public.gpg"

# make_tree VERSION: an example OS with a kernel, /usr/etc and some files.
make_tree() {
  local v=$1 root=$work/rootfs-$1
  rm -rf "$root"
  mkdir -p "$root"/usr/{bin,lib/modules/6.1.0,share/doc/example,etc}
  printf '#!/bin/sh\necho "hello from Example OS %s"\n' "$v" > "$root/usr/bin/hello"
  chmod 755 "$root/usr/bin/hello"
  printf 'ID=exampleos\nNAME="Example OS"\nVERSION_ID=%s\nPRETTY_NAME="Example OS %s"\n' "$v" "$v" > "$root/usr/lib/os-release"
  head -c 3000000 /dev/zero | tr '\0' 'k' > "$root/usr/lib/modules/6.1.0/vmlinuz"
  echo "kernel build $v" >> "$root/usr/lib/modules/6.1.0/vmlinuz"
  echo "initramfs $v" > "$root/usr/lib/modules/6.1.0/initramfs.img"
  echo "exampleos" > "$root/usr/etc/hostname"
  for i in $(seq 1 300); do echo "page $i of the manual, version $v" > "$root/usr/share/doc/example/page$i.txt"; done
  echo "$root"
}

# publish VERSION: commit, sign, delta from the previous commit, summary.
publish() {
  local v=$1 root c
  root=$(make_tree "$v")
  c=$("$osu" repo commit --repo "$work/server" -b exampleos/x86_64/stable -s "Example OS $v" \
        --add-metadata-string version="$v" --bootable "$root")
  "$osu" repo sign --repo "$work/server" "$c" --gpg-key "$work/secret.gpg"
  if "$osu" repo rev-parse --repo "$work/server" "$c^" >/dev/null 2>&1; then
    "$osu" repo delta generate --repo "$work/server" --to "$c"
  fi
  "$osu" repo summary --repo "$work/server" --update --gpg-key "$work/secret.gpg"
  echo "published version $v as $c"
}

step "server: commit, sign and serve version 1"
rm -rf "$work/server"
"$osu" repo init --repo "$work/server" --mode archive
publish 1
port=$((20000 + RANDOM % 20000))
"$osu" repo serve --repo "$work/server" --addr "127.0.0.1:$port" 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$port/config" >/dev/null 2>&1 && break; sleep 0.1; done

step "host: install a sysroot from the server"
sysroot=$work/sysroot
if [ -d "$sysroot" ]; then unlock_deployments "$sysroot"; rm -rf "$sysroot"; fi
"$osu" admin init-fs "$sysroot"
"$osu" admin os-init exampleos --sysroot "$sysroot"
"$osu" repo remote add --repo "$sysroot/ostree/repo" --gpg-import "$work/public.gpg" origin "http://127.0.0.1:$port"
"$osu" repo pull --repo "$sysroot/ostree/repo" origin:exampleos/x86_64/stable
"$osu" admin deploy --sysroot "$sysroot" --os exampleos --karg root=LABEL=root origin:exampleos/x86_64/stable

step "host: start os-updated on a private bus"
cat > "$work/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$work/bus.socket</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/>
  </policy>
</busconfig>
EOF
rm -f "$work/bus.socket"
dbus-daemon --config-file="$work/bus.conf" --nofork --print-address=1 >"$work/bus.address" 2>/dev/null &
pids+=($!)
for _ in $(seq 1 50); do [ -s "$work/bus.address" ] && break; sleep 0.1; done
export OS_UPDATE_BUS_ADDRESS=$(head -1 "$work/bus.address")
"$bin/os-updated" --bus-address "$OS_UPDATE_BUS_ADDRESS" --sysroot "$sysroot" --state "$work/state.db" \
  --idle-exit 0 --reboot-command true 2>"$work/os-updated.log" &
pids+=($!)
for _ in $(seq 1 50); do "$osu" status >/dev/null 2>&1 && break; sleep 0.1; done
"$osu" status

step "server: publish version 2 (signed, with a static delta from version 1)"
publish 2

step "host: os-update upgrade --check, then upgrade"
"$osu" upgrade --check || true
"$osu" upgrade
"$osu" status

step "host: os-update rollback"
"$osu" rollback
"$osu" status
"$osu" history

if command -v ostree >/dev/null; then
  step "the reference ostree reads the same sysroot"
  ostree admin status --sysroot="$sysroot"
fi
echo
echo "demo finished; everything is in $work (os-updated log: $work/os-updated.log)"
if [ "${DEMO_CLEAN:-0}" = 1 ]; then
  echo "DEMO_CLEAN=1: $work is deleted now"
else
  echo "its deployments are immutable (chattr +i); to delete it: chattr -i $sysroot/ostree/deploy/*/deploy/*/ && rm -rf $work"
fi
