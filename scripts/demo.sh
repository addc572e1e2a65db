#!/usr/bin/env bash
# The main job end to end on a built-in example: build os-update, generate a
# small OS-like tree, commit it into an archive repository, commit a second
# version, check it out, verify it, and let the reference ostree command
# verify the same repository when it is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${DEMO_DIR:-$(mktemp -d /tmp/os-update-demo.XXXXXX)}
bin=$work/os-update
go build -o "$bin" ./cmd/os-update
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "generate an example OS tree in $work/rootfs"
rootfs=$work/rootfs
rm -rf "$rootfs"; mkdir -p "$rootfs"/usr/{bin,lib/modules/6.1.0,share/doc/example} "$rootfs"/etc
printf '#!/bin/sh\necho hello from example OS\n' > "$rootfs/usr/bin/hello"; chmod 755 "$rootfs/usr/bin/hello"
printf 'NAME="Example OS"\nVERSION_ID=1\nPRETTY_NAME="Example OS 1"\n' > "$rootfs/usr/lib/os-release"
ln -sf ../usr/lib/os-release "$rootfs/etc/os-release"
head -c 2000000 /dev/urandom > "$rootfs/usr/lib/modules/6.1.0/vmlinuz"
echo "example initramfs" > "$rootfs/usr/lib/modules/6.1.0/initramfs.img"
for i in $(seq 1 200); do echo "doc $i" > "$rootfs/usr/share/doc/example/page$i.txt"; done

step "create an archive repository and commit version 1"
"$bin" repo init --repo "$work/repo" --mode archive
"$bin" repo commit --repo "$work/repo" -b exampleos/x86_64/stable -s "Example OS 1" \
  --add-metadata-string version=1 --bootable "$rootfs"

step "change the tree and commit version 2"
echo "new feature" > "$rootfs/usr/bin/feature"
sed -i 's/1/2/g' "$rootfs/usr/lib/os-release"
"$bin" repo commit --repo "$work/repo" -b exampleos/x86_64/stable -s "Example OS 2" \
  --add-metadata-string version=2 --bootable "$rootfs"

step "history, listing, checkout"
"$bin" repo log --repo "$work/repo" exampleos/x86_64/stable
"$bin" repo ls --repo "$work/repo" exampleos/x86_64/stable /usr/bin
rm -rf "$work/checkout"
"$bin" repo checkout --repo "$work/repo" exampleos/x86_64/stable "$work/checkout"
diff -r "$rootfs" "$work/checkout" && echo "checkout is identical to the source tree"

step "verify"
"$bin" repo fsck --repo "$work/repo"
if command -v ostree >/dev/null; then
  step "the reference implementation reads the same repository"
  ostree fsck --repo="$work/repo"
  ostree log --repo="$work/repo" exampleos/x86_64/stable | head -8
fi
echo
echo "demo finished; files are in $work"
