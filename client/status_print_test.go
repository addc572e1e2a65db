package client

import (
	"bytes"
	"strings"
	"testing"

	"github.com/osupdate/os-update/daemon/api"
)

// status prints the roles the daemon computed: a default of another
// stateroot before the booted deployment is not "pending".
func TestPrintStatusUsesRoles(t *testing.T) {
	var out bytes.Buffer
	e := &env{stdout: &out, stderr: &out}
	st := &api.Status{Deployments: []api.Deployment{
		{OSName: "beta", Origin: "o:b", Checksum: "b4", Default: true},
		{OSName: "alpha", Origin: "o:a", Checksum: "a3", Booted: true},
		{OSName: "alpha", Origin: "o:a", Checksum: "a2", Rollback: true},
	}}
	printStatus(e, st, false)
	lines := strings.Split(out.String(), "\n")
	var heads []string
	for _, l := range lines {
		if strings.HasPrefix(l, "  ") || strings.HasPrefix(l, "●") {
			if !strings.HasPrefix(strings.TrimLeft(l, " "), "Version") && strings.Contains(l, ":o:") {
				heads = append(heads, l)
			}
		}
	}
	want := []string{"  beta:o:b", "● alpha:o:a", "  alpha:o:a (rollback)"}
	if strings.Join(heads, "|") != strings.Join(want, "|") {
		t.Fatalf("status:\n%s\nwant deployment lines %q", out.String(), want)
	}
	// With the pending role set by the daemon, it is shown.
	st.Deployments[0].OSName, st.Deployments[0].Pending = "alpha", true
	out.Reset()
	printStatus(e, st, false)
	if !strings.Contains(out.String(), "alpha:o:b (pending)") {
		t.Fatalf("pending not shown:\n%s", out.String())
	}
}
