// Package ostreefmt writes the text that libostree's command line prints,
// so that our CLI and the ostree personality print it the same way.
package ostreefmt

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo/object"
)

// WriteCommit writes one commit the way `ostree log` and `ostree show`
// do: header lines, then the subject and body indented by four spaces.
func WriteCommit(w io.Writer, sum object.Checksum, cm *object.Commit) {
	fmt.Fprintf(w, "commit %s\n", sum)
	if cm.HasParent() {
		fmt.Fprintf(w, "Parent:  %s\n", cm.Parent)
	}
	fmt.Fprintf(w, "ContentChecksum:  %s\n", cm.ContentChecksum())
	fmt.Fprintf(w, "Date:  %s\n", time.Unix(int64(cm.Timestamp), 0).UTC().Format("2006-01-02 15:04:05 -0700"))
	if v := cm.Version(); v != "" {
		fmt.Fprintf(w, "Version: %s\n", v)
	}
	fmt.Fprintf(w, "\n    %s\n\n", cm.Subject)
	if cm.Body != "" {
		for _, l := range strings.Split(cm.Body, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
		fmt.Fprintf(w, "\n")
	}
}
