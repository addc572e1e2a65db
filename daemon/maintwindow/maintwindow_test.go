package maintwindow

import (
	"math/rand"
	"strings"
	"testing"
	"time"
)

func zone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("time zone %s (tzdata): %v", name, err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// 2026 transitions: Europe/Berlin springs forward on Sun 29 March at
// 01:00 UTC (02:00 CET -> 03:00 CEST) and falls back on Sun 25 October at
// 01:00 UTC (03:00 CEST -> 02:00 CET); America/New_York on Sun 8 March at
// 07:00 UTC (02:00 EST -> 03:00 EDT) and Sun 1 November at 06:00 UTC
// (02:00 EDT -> 01:00 EST).

func TestNext(t *testing.T) {
	for _, c := range []struct {
		name, spec, at, want string // times in UTC
	}{
		{"weekend skips to Monday (CEST)", "Mon..Fri 02:00-04:00 Europe/Berlin", "2026-03-28 11:00:00", "2026-03-30 00:00:00"},
		{"already open: now", "Mon..Fri 02:00-04:00 Europe/Berlin", "2026-03-30 01:15:30", "2026-03-30 01:15:30"},
		{"spring forward: the window opens when the clock jumps to 03:00", "02:00-04:00 Europe/Berlin", "2026-03-28 23:30:00", "2026-03-29 01:00:00"},
		{"spring forward: a window inside the missing hour is skipped that day", "Sun 02:00-02:30 Europe/Berlin", "2026-03-28 23:00:00", "2026-04-05 00:00:00"},
		{"fall back: first 02:30 (CEST)", "02:30-02:45 Europe/Berlin", "2026-10-24 22:00:00", "2026-10-25 00:30:00"},
		{"fall back: the repeated hour opens the window again (CET)", "02:30-02:45 Europe/Berlin", "2026-10-25 00:50:00", "2026-10-25 01:30:00"},
		{"fall back: after both, the next day", "02:30-02:45 Europe/Berlin", "2026-10-25 01:50:00", "2026-10-26 01:30:00"},
		{"New York spring forward: 02:00-02:59 does not exist", "Sun 02:00-02:59 America/New_York", "2026-03-08 05:00:00", "2026-03-15 06:00:00"},
		{"New York before the jump", "Sun 01:30-02:30 America/New_York", "2026-03-08 05:00:00", "2026-03-08 06:30:00"},
		{"New York after the jump: next week in EDT", "Sun 01:30-02:30 America/New_York", "2026-03-08 07:00:00", "2026-03-15 05:30:00"},
		{"New York fall back: 01:30 EDT first", "Sun 01:30-01:45 America/New_York", "2026-11-01 04:00:00", "2026-11-01 05:30:00"},
		{"New York fall back: 01:30 EST again", "Sun 01:30-01:45 America/New_York", "2026-11-01 05:50:00", "2026-11-01 06:30:00"},
		{"crossing midnight: open after midnight", "Sat 23:00-01:00 UTC", "2026-03-29 00:30:00", "2026-03-29 00:30:00"},
		{"crossing midnight: closed at its end", "Sat 23:00-01:00 UTC", "2026-03-29 01:00:00", "2026-04-04 23:00:00"},
		{"day range over the week end", "Fri..Mon 22:00-06:00 UTC", "2026-03-31 07:00:00", "2026-04-03 22:00:00"},
		{"Monday night reaches Tuesday", "Fri..Mon 22:00-06:00 UTC", "2026-03-31 05:59:59", "2026-03-31 05:59:59"},
		{"two windows in two zones: the earlier wins", "Mon 10:00-11:00 UTC; Mon 04:00-05:00 America/New_York", "2026-03-30 00:00:00", "2026-03-30 08:00:00"},
		{"24:00 end", "Tue 22:00-24:00 UTC", "2026-03-31 23:59:59", "2026-03-31 23:59:59"},
		{"24:00 end is exclusive", "Tue 22:00-24:00 UTC", "2026-04-01 00:00:00", "2026-04-07 22:00:00"},
		{"crossing midnight over spring forward", "Sat 23:00-03:00 Europe/Berlin", "2026-03-29 00:59:00", "2026-03-29 00:59:00"},
		{"crossing midnight over spring forward ends at 03:00 CEST", "Sat 23:00-03:00 Europe/Berlin", "2026-03-29 01:00:00", "2026-04-04 21:00:00"},
		{"always", "", "2026-03-29 01:00:00", "2026-03-29 01:00:00"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := Parse(c.spec, time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			at, want := utc(c.at), utc(c.want)
			got := s.Next(at)
			if !got.Equal(want) {
				t.Fatalf("Next(%s) of %q = %s, want %s", at, c.spec, got.UTC(), want)
			}
			if !s.Open(got) {
				t.Fatalf("not open at its own opening %s", got.UTC())
			}
			if !got.Equal(at) && s.Open(got.Add(-time.Second)) {
				t.Fatalf("already open a second before the opening %s", got.UTC())
			}
		})
	}
}

func TestOpen(t *testing.T) {
	berlin := "02:00-04:00 Europe/Berlin"
	for _, c := range []struct {
		spec, at string
		open     bool
	}{
		// Fall back: 02:00-04:00 wall clock lasts three hours.
		{berlin, "2026-10-24 23:59:59", false}, // 01:59:59 CEST
		{berlin, "2026-10-25 00:00:00", true},  // 02:00 CEST
		{berlin, "2026-10-25 00:30:00", true},  // 02:30 CEST
		{berlin, "2026-10-25 01:30:00", true},  // 02:30 CET
		{berlin, "2026-10-25 02:59:59", true},  // 03:59:59 CET
		{berlin, "2026-10-25 03:00:00", false},
		// Spring forward: one hour.
		{berlin, "2026-03-29 00:59:59", false}, // 01:59:59 CET
		{berlin, "2026-03-29 01:00:00", true},  // 03:00 CEST
		{berlin, "2026-03-29 01:59:59", true},
		{berlin, "2026-03-29 02:00:00", false},
		// Summer: CEST.
		{berlin, "2026-07-01 00:00:00", true},
		{berlin, "2026-07-01 02:00:00", false},
		{"Sat,Sun 00:00-24:00 UTC", "2026-03-28 00:00:00", true},
		{"Sat,Sun 00:00-24:00 UTC", "2026-03-30 00:00:00", false},
		{"mon..wed,FRIDAY 10:00-11:00 UTC", "2026-04-03 10:30:00", true},
		{"mon..wed,FRIDAY 10:00-11:00 UTC", "2026-04-02 10:30:00", false},
	} {
		s, err := Parse(c.spec, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		at := utc(c.at)
		if got := s.Open(at); got != c.open {
			t.Errorf("%q at %s UTC: open %v, want %v", c.spec, at, got, c.open)
		}
	}
}

// Next agrees with a minute-by-minute walk of Open around every
// transition of the year, for windows in several zones.
func TestNextAgreesWithWalk(t *testing.T) {
	specs := []string{
		"Mon..Fri 02:00-04:00 Europe/Berlin",
		"Sun 02:00-02:30 Europe/Berlin",
		"Sat 23:30-02:15 America/New_York",
		"01:00-01:30 America/New_York; Wed 12:00-12:05 Australia/Lord_Howe",
		"Fri..Mon 22:00-06:00",
	}
	rng := rand.New(rand.NewSource(1))
	starts := []string{"2026-03-27 00:00:00", "2026-03-06 00:00:00", "2026-10-23 00:00:00", "2026-10-30 00:00:00", "2026-04-03 12:00:00"}
	for _, spec := range specs {
		s, err := Parse(spec, zone(t, "Europe/London"))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 12; i++ {
			at := utc(starts[rng.Intn(len(starts))]).Add(time.Duration(rng.Int63n(int64(72 * time.Hour))))
			want := at
			if !s.Open(at) {
				want = at.Truncate(time.Minute).Add(time.Minute)
				for !s.Open(want) {
					want = want.Add(time.Minute)
				}
			}
			if got := s.Next(at); !got.Equal(want) {
				t.Errorf("%q from %s UTC: Next %s, walk %s", spec, at, got.UTC(), want.UTC())
			}
		}
	}
}

func TestParseErrorsAndCanonicalForm(t *testing.T) {
	for _, c := range []struct{ spec, want string }{
		{"Mon..Fri", "no HH:MM-HH:MM"},
		{"25:00-26:00", "time \"25:00\""},
		{"Mon 02:00-02:00", "empty"},
		{"Xyz 02:00-03:00", "day \"Xyz\""},
		{"02:00-03:00 Mars/Olympus", "time zone \"Mars/Olympus\""},
		{"Mon Tue 02:00-03:00", "fields"},
		{"Mon 02:00-03:00; ", "empty window"},
		{"24:00-02:00", "time \"24:00\""},
		{"02:0-03:00", "time \"02:0\""},
	} {
		_, err := Parse(c.spec, time.UTC)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q): %v, want an error naming %s", c.spec, err, c.want)
		}
	}
	for spec, want := range map[string]string{
		"mon..fri 2:00-04:00 Europe/Berlin":    "Mon..Fri 02:00-04:00 Europe/Berlin",
		"sun,sat,monday 01:00-02:00":           "Mon,Sat,Sun 01:00-02:00",
		"Mon..Sun 22:00-06:00;Tue 10:00-11:00": "22:00-06:00; Tue 10:00-11:00",
		"Fri..Mon 00:00-24:00 UTC":             "Mon,Fri..Sun 00:00-24:00 UTC",
		"  ":                                   "",
	} {
		s, err := Parse(spec, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", spec, got, want)
		}
		again, err := Parse(s.String(), time.UTC)
		if err != nil || again.String() != want {
			t.Errorf("canonical form %q does not parse to itself: %v", want, err)
		}
	}
}
