// Command os-update updates, inspects and builds OSTree-based operating
// systems. All logic lives in package client.
package main

import (
	"os"

	"github.com/osupdate/os-update/client"
	"github.com/osupdate/os-update/compose/initramfs"
	"github.com/osupdate/os-update/ostreecli"
)

func main() {
	// The same static binary is the /init of the initramfs compose builds.
	if initramfs.IsInitramfsInit(os.Args[0]) {
		initramfs.Main(os.Stderr)
	}
	stop := startProfiles()
	run := client.Main
	if ostreecli.IsOstree(os.Args[0]) { // the ostree personality (symlink named ostree)
		run = ostreecli.Main
	}
	code := run(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
