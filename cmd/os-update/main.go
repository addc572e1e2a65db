// Command os-update updates, inspects and builds OSTree-based operating
// systems. All logic lives in package client.
package main

import (
	"os"

	"github.com/osupdate/os-update/client"
	"github.com/osupdate/os-update/compose/initramfs"
)

func main() {
	// The same static binary is the /init of the initramfs compose builds.
	if initramfs.IsInitramfsInit(os.Args[0]) {
		initramfs.Main(os.Stderr)
	}
	stop := startProfiles()
	code := client.Main(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
