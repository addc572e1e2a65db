package client

import (
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/daemon/api"
)

func TestAutomaticLines(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	opens := time.Date(2026, 3, 30, 2, 0, 0, 0, berlin).Unix()
	for _, c := range []struct {
		a    *api.AutomaticStatus
		want string
	}{
		{nil, "AutomaticUpdates: stage"},
		{&api.AutomaticStatus{Policy: "check"}, "AutomaticUpdates: check"},
		{&api.AutomaticStatus{Policy: "apply"}, "AutomaticUpdates: apply; reboots at any time"},
		{&api.AutomaticStatus{Policy: "apply", Window: "Mon..Fri 02:00-04:00 Europe/Berlin", NextWindow: opens, RandomDelay: 900,
			FleetLockURL: "http://fl:8080/", FleetLockGroup: "workers", FleetLockHeld: true,
			Reboot: &api.ScheduledReboot{Checksum: "9a0c", At: opens + 300, Reason: api.RebootReasonWindow}},
			"AutomaticUpdates: apply; window Mon..Fri 02:00-04:00 Europe/Berlin (opens 2026-03-30 02:00 CEST), random delay up to 15m0s|" +
				"FleetLock: http://fl:8080/ group workers (reboot slot held until a healthy boot)|" +
				"RebootScheduled: 2026-03-30 02:05 CEST into 9a0c (when the window opens, plus the random delay)"},
		{&api.AutomaticStatus{Policy: "apply", Window: "02:00-04:00", WindowOpen: true,
			Reboot: &api.ScheduledReboot{Checksum: "9a0c", At: opens, Reason: api.RebootReasonLock}},
			"AutomaticUpdates: apply; window 02:00-04:00 (open)|RebootScheduled: 2026-03-30 02:00 CEST into 9a0c (next try for the FleetLock reboot slot)"},
	} {
		if got := strings.Join(automaticLines("stage", c.a, berlin), "|"); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}
