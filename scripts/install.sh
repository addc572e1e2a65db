#!/usr/bin/env bash
# Builds and installs os-update and os-updated with their shell completions,
# man pages and the dist/ files (D-Bus, systemd, polkit), as the table in
# docs/daemon.md ("Installation") lists them.
#
#   scripts/install.sh                      # onto this machine (as root)
#   DESTDIR=/tmp/pkgroot scripts/install.sh # into a staging root, for packaging
#
# VERSION names the build in --version (default: git describe); the commit
# comes from git. The optional polkit rules are not installed (see
# docs/daemon.md).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH
DESTDIR=${DESTDIR:-}
usr=$DESTDIR/usr

build=$(mktemp -d "${TMPDIR:-/tmp}/os-update-install.XXXXXX")
trap 'rm -rf "$build"' EXIT
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)}
pkg=github.com/osupdate/os-update/internal/version
ldflags="-X $pkg.Version=$version -X $pkg.Commit=$commit"
go build -trimpath -ldflags "$ldflags" -o "$build/os-update" ./cmd/os-update
go build -trimpath -ldflags "$ldflags" -o "$build/os-updated" ./cmd/os-updated

install -D -m 0755 "$build/os-update" "$usr/bin/os-update"
install -D -m 0755 "$build/os-updated" "$usr/libexec/os-updated"

"$build/os-update" completion bash > "$build/os-update.bash"
"$build/os-update" completion zsh > "$build/_os-update"
"$build/os-update" completion fish > "$build/os-update.fish"
install -D -m 0644 "$build/os-update.bash" "$usr/share/bash-completion/completions/os-update"
install -D -m 0644 "$build/_os-update" "$usr/share/zsh/site-functions/_os-update"
install -D -m 0644 "$build/os-update.fish" "$usr/share/fish/vendor_completions.d/os-update.fish"

"$build/os-update" man "$build/man1" 2>/dev/null
"$build/os-updated" man "$build/man8"
install -d "$usr/share/man/man1" "$usr/share/man/man8"
install -m 0644 "$build"/man1/*.1 "$usr/share/man/man1/"
install -m 0644 "$build"/man8/*.8 "$usr/share/man/man8/"

install -D -m 0644 dist/dbus/org.osupdate.OSUpdate1.conf "$usr/share/dbus-1/system.d/org.osupdate.OSUpdate1.conf"
install -D -m 0644 dist/dbus/org.osupdate.OSUpdate1.service "$usr/share/dbus-1/system-services/org.osupdate.OSUpdate1.service"
install -d "$usr/lib/systemd/system"
install -m 0644 dist/systemd/* "$usr/lib/systemd/system/"
install -D -m 0644 dist/polkit/org.osupdate.OSUpdate1.policy "$usr/share/polkit-1/actions/org.osupdate.OSUpdate1.policy"

echo "installed os-update $version into ${DESTDIR:-/}"
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	systemctl reload dbus 2>/dev/null || true
	echo "enable what this host should run, e.g.: systemctl enable os-update-health-check.service; systemctl enable --now os-update-automatic.timer"
fi
