// Package maintwindow is the maintenance window of automatic reboots: a
// set of weekly wall-clock intervals in a time zone, such as
// "Mon..Fri 02:00-04:00 Europe/Berlin; Sat,Sun 22:00-06:00".
//
// Windows follow the wall clock of their zone: on the day clocks spring
// forward, a window 02:00-04:00 in Europe/Berlin is open from 03:00 (the
// hour 02:00-03:00 does not exist), and one of 02:00-02:30 is not open
// at all; on the day clocks fall back, 02:00-04:00 is open for three
// hours, the repeated hour twice. A window whose end is not after its
// start crosses midnight: "Sat 23:00-01:00" is open from Saturday 23:00
// to Sunday 01:00 (its day is the day it opens).
package maintwindow

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed window specification. An empty specification
// means no restriction: it is always open.
type Schedule struct {
	windows []window
}

type window struct {
	days       [7]bool // by time.Weekday
	start, end int     // minutes after midnight; end 1440 is midnight after
	loc        *time.Location
	zone       string // as written; "" for the default zone
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}
var dayLabels = []string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// Parse reads a specification: windows separated by ';', each
// "[DAYS] HH:MM-HH:MM [ZONE]". DAYS is a comma-separated list of days
// (Mon, Tue, ... or full names, any case) and ranges (Mon..Fri; Fri..Mon
// wraps over the week end), every day when left out. ZONE is an IANA
// time zone (Europe/Berlin, UTC); without it the window is in def.
func Parse(spec string, def *time.Location) (*Schedule, error) {
	s := &Schedule{}
	if strings.TrimSpace(spec) == "" {
		return s, nil
	}
	for _, part := range strings.Split(spec, ";") {
		w, err := parseWindow(strings.Fields(part), def)
		if err != nil {
			return nil, fmt.Errorf("maintenance window %q: %w", strings.TrimSpace(part), err)
		}
		s.windows = append(s.windows, w)
	}
	return s, nil
}

func parseWindow(f []string, def *time.Location) (window, error) {
	w := window{loc: def}
	if len(f) == 0 {
		return w, fmt.Errorf("empty window (want [DAYS] HH:MM-HH:MM [ZONE])")
	}
	// The times are the field with a '-' between two clock times; days
	// come before it, the zone after.
	ti := -1
	for i, x := range f {
		if strings.Contains(x, ":") && strings.Contains(x, "-") && !strings.Contains(x, "/") {
			ti = i
			break
		}
	}
	if ti < 0 {
		return w, fmt.Errorf("no HH:MM-HH:MM time range")
	}
	if ti > 1 || len(f)-ti > 2 {
		return w, fmt.Errorf("want [DAYS] HH:MM-HH:MM [ZONE], got %d fields", len(f))
	}
	if ti == 1 {
		if err := parseDays(f[0], &w.days); err != nil {
			return w, err
		}
	} else {
		w.days = [7]bool{true, true, true, true, true, true, true}
	}
	from, to, _ := strings.Cut(f[ti], "-")
	var err error
	if w.start, err = parseClock(from, false); err != nil {
		return w, err
	}
	if w.end, err = parseClock(to, true); err != nil {
		return w, err
	}
	if w.start == w.end {
		return w, fmt.Errorf("window %s is empty (for a whole day write 00:00-24:00)", f[ti])
	}
	if ti+1 < len(f) {
		w.zone = f[ti+1]
		if w.loc, err = time.LoadLocation(w.zone); err != nil {
			return w, fmt.Errorf("time zone %q: %w", w.zone, err)
		}
	}
	if w.loc == nil {
		w.loc = time.Local
	}
	return w, nil
}

func parseDays(s string, days *[7]bool) error {
	for _, item := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(item, "..")
		from, err := parseDay(a)
		if err != nil {
			return err
		}
		to := from
		if isRange {
			if to, err = parseDay(b); err != nil {
				return err
			}
		}
		for d := from; ; d = (d + 1) % 7 {
			days[d] = true
			if d == to {
				break
			}
		}
	}
	return nil
}

func parseDay(s string) (int, error) {
	l := strings.ToLower(s)
	for i, n := range dayNames {
		if l == n || l == strings.ToLower(time.Weekday(i).String()) {
			return i, nil
		}
	}
	return 0, fmt.Errorf("day %q: want Mon, Tue, Wed, Thu, Fri, Sat or Sun (or a range such as Mon..Fri)", s)
}

// parseClock reads HH:MM as minutes after midnight; 24:00 only as an end.
func parseClock(s string, isEnd bool) (int, error) {
	hs, ms, ok := strings.Cut(s, ":")
	h, err1 := strconv.Atoi(hs)
	m, err2 := strconv.Atoi(ms)
	if !ok || err1 != nil || err2 != nil || len(ms) != 2 || len(hs) == 0 || len(hs) > 2 || h < 0 || m < 0 || m > 59 || h > 24 || (h == 24 && (m != 0 || !isEnd)) {
		return 0, fmt.Errorf("time %q: want HH:MM (00:00 to 23:59, or 24:00 as an end)", s)
	}
	return h*60 + m, nil
}

// String is the specification in canonical form ("" when always open).
func (s *Schedule) String() string {
	var parts []string
	for _, w := range s.windows {
		var f []string
		if d := formatDays(w.days); d != "" {
			f = append(f, d)
		}
		f = append(f, fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, w.end/60, w.end%60))
		if w.zone != "" {
			f = append(f, w.zone)
		}
		parts = append(parts, strings.Join(f, " "))
	}
	return strings.Join(parts, "; ")
}

// formatDays lists days Monday first, runs of three or more as ranges;
// "" for every day.
func formatDays(days [7]bool) string {
	order := []int{1, 2, 3, 4, 5, 6, 0}
	var items []string
	all := true
	for i := 0; i < 7; {
		if !days[order[i]] {
			all = false
			i++
			continue
		}
		j := i
		for j+1 < 7 && days[order[j+1]] {
			j++
		}
		switch {
		case j-i >= 2:
			items = append(items, dayLabels[order[i]]+".."+dayLabels[order[j]])
		case j > i:
			items = append(items, dayLabels[order[i]], dayLabels[order[j]])
		default:
			items = append(items, dayLabels[order[i]])
		}
		i = j + 1
	}
	if all {
		return ""
	}
	return strings.Join(items, ",")
}

// Always reports whether the schedule has no windows (always open).
func (s *Schedule) Always() bool { return s == nil || len(s.windows) == 0 }

// Open reports whether t is inside a window.
func (s *Schedule) Open(t time.Time) bool {
	if s.Always() {
		return true
	}
	for _, w := range s.windows {
		if w.contains(naive(t.In(w.loc))) {
			return true
		}
	}
	return false
}

// Next returns the first instant at or after t when the schedule is open:
// t itself when it is open. It returns the zero time if no window opens
// within five weeks (it cannot happen for a valid schedule).
func (s *Schedule) Next(t time.Time) time.Time {
	if s.Always() {
		return t
	}
	var best time.Time
	for _, w := range s.windows {
		if n := w.next(t); !n.IsZero() && (best.IsZero() || n.Before(best)) {
			best = n
		}
	}
	if best.IsZero() {
		return best
	}
	return best.In(t.Location())
}

// naive is the wall clock of t as a UTC time, for calendar arithmetic
// that knows no daylight saving.
func naive(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// contains reports whether a wall-clock time (naive) is inside w.
func (w window) contains(n time.Time) bool {
	sec := n.Hour()*3600 + n.Minute()*60 + n.Second()
	wd := int(n.Weekday())
	if w.end > w.start {
		return w.days[wd] && sec >= w.start*60 && sec < w.end*60
	}
	return w.days[wd] && sec >= w.start*60 || w.days[(wd+6)%7] && sec < w.end*60
}

// nextNaive is the first wall-clock time at or after n inside w.
func (w window) nextNaive(n time.Time) time.Time {
	if w.contains(n) {
		return n
	}
	day := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
	for i := 0; i < 8; i++ {
		d := day.AddDate(0, 0, i)
		if !w.days[d.Weekday()] {
			continue
		}
		if s := d.Add(time.Duration(w.start) * time.Minute); !s.Before(n) {
			return s
		}
	}
	return time.Time{} // no day selected: Parse never builds such a window
}

// next walks the spans of constant UTC offset of w's zone from t on: in
// each the wall clock is t plus the offset, so the first wall-clock time
// inside w that the span reaches is the answer.
func (w window) next(t time.Time) time.Time {
	limit := t.Add(5 * 7 * 24 * time.Hour)
	for x := t; x.Before(limit); {
		local := x.In(w.loc)
		_, off := local.Zone()
		_, spanEnd := local.ZoneBounds()
		if spanEnd.IsZero() || spanEnd.After(limit) {
			spanEnd = limit
		}
		offset := time.Duration(off) * time.Second
		cand := w.nextNaive(naive(local))
		if !cand.IsZero() {
			// The wall clock of spanEnd under this span's offset.
			if wallEnd := spanEnd.UTC().Add(offset); cand.Before(wallEnd) {
				return time.Unix(0, cand.UnixNano()-int64(offset)).In(w.loc)
			}
		}
		if !spanEnd.After(x) {
			return time.Time{}
		}
		x = spanEnd
	}
	return time.Time{}
}
