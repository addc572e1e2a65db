package daemon

import (
	"strings"
	"testing"

	"github.com/osupdate/os-update/daemon/api"
)

func TestDecideUnhealthy(t *testing.T) {
	good := &api.BootVerdict{Verdict: api.VerdictHealthy, Good: true}
	goodThenBad := &api.BootVerdict{Verdict: api.VerdictUnhealthy, Good: true}
	bad := &api.BootVerdict{Verdict: api.VerdictUnhealthy}
	for _, c := range []struct {
		name        string
		prior       *api.BootVerdict
		target      string
		targetPrior *api.BootVerdict
		rollback    bool
		detail      string
	}{
		{"new deployment, unknown previous", nil, "os/old.0", nil, true, ""},
		{"new deployment, good previous", nil, "os/old.0", good, true, ""},
		{"failed before, never passed", bad, "os/old.0", good, true, ""},
		{"previous passed once, failed later", nil, "os/old.0", goodThenBad, true, ""},
		{"passed before: long-running host", good, "os/old.0", good, false, "passed its health check on an earlier boot"},
		{"no previous deployment", nil, "", nil, false, "no previous deployment of os"},
		{"previous failed too: no loop", nil, "os/old.0", bad, false, "failed its health check too"},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := decideUnhealthy("os/new.0", c.prior, c.target, c.targetPrior)
			if d.rollback != c.rollback || !strings.Contains(d.detail, c.detail) || (!d.rollback && d.detail == "") {
				t.Fatalf("got %+v, want rollback=%v detail ~%q", d, c.rollback, c.detail)
			}
		})
	}
}
