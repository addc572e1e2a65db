// Command os-update updates, inspects and builds OSTree-based operating
// systems. All logic lives in package client.
package main

import (
	"os"

	"github.com/osupdate/os-update/client"
)

func main() {
	stop := startProfiles()
	code := client.Main(os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
