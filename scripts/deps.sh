#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real. Safe to run
# again: apt-get skips what is installed. Needs root (CI runs as root).
set -euo pipefail
packages=(
  ostree          # the reference implementation, our test oracle
  ostree-tests    # libostree's test data: hostile repositories, old deltas
  gnupg           # OpenPGP keys and signatures in tests
  python3         # a third-party HTTP server (python3 -m http.server)
  bubblewrap      # sandbox for RPM scriptlets
  rpm             # rpmbuild and rpmsign for RPM fixtures
  createrepo-c    # rpm-md repository metadata for fixtures
  libsolv-tools   # testsolv: reference solver for the solver puzzles
  dbus            # dbus-daemon for a private bus
  grub-common     # grub-script-check validates generated grub.cfg; grub-mkimage, grub-editenv
  grub-pc-bin     # grub's BIOS boot code and modules: compose image --bootloader grub2
  u-boot-tools    # mkenvimage reads generated uEnv.txt
  qemu-system-x86 # boot tests (integration/TestBoot), TCG
  qemu-utils      # qemu-img: compose image --format qcow2
  extlinux syslinux-common # the boot loader compose image installs (and its MBR code)
  busybox-static  # the boot test guest's userland; a static ELF for initramfs tests
  fdisk           # sfdisk reads back the partition table in tests
  kmod            # depmod: compose writes modules.dep for a tree's kernel
  attr            # getfattr/setfattr
  util-linux      # unshare, setpriv
  systemd         # systemd-id128 (oracle of the FleetLock client id), busctl (D-Bus calls as another user)
  gcc zlib1g-dev   # cgo: .filez objects through the system zlib, as libostree writes them
  liblzma-dev      # cgo: static-delta parts decoded in-process by liblzma
  docker-registry # a real OCI registry on 127.0.0.1 for the container tests
  skopeo          # checks that our images are what container tools accept
  buildah         # builds derived images FROM ours with a Containerfile
  polkitd         # a real polkit authority on the test bus (integration/TestPolkit*, TestCockpitPage)
  cockpit-ws cockpit-bridge # serve the Cockpit page on 127.0.0.1 (integration/TestCockpitPage)
  chromium        # headless browser driving the Cockpit page over the DevTools protocol
  bash-completion # the completion script os-update completion bash writes runs on it (integration/TestInstallScript)
  cpio xz-utils zstd e2fsprogs
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing Debian packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
