// Command os-updated is the os-update daemon on the D-Bus system bus. All
// logic lives in package daemon.
package main

import (
	"os"

	"github.com/osupdate/os-update/daemon"
)

func main() {
	os.Exit(daemon.Main(os.Args[1:], os.Stdout, os.Stderr))
}
