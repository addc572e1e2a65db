// Package progress renders the progress of long operations (pulls,
// upgrades) for people: a redrawn bar on a terminal, and on pipes and in
// logs plain lines, rate-limited, with no carriage returns and no ANSI
// escapes. Whether the output is a terminal is decided once, by the
// caller (see IsTerminal), so the renderer can be tested on any writer.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Update is a snapshot of an operation. Zero totals mean "unknown".
type Update struct {
	Stage        string
	BytesDone    uint64
	BytesTotal   uint64
	ObjectsDone  uint64
	ObjectsTotal uint64
	PartsDone    uint64 // static delta parts
	PartsTotal   uint64
	Rate         uint64        // bytes per second; 0: unknown
	ETA          time.Duration // 0: unknown
}

// Options configure a Renderer.
type Options struct {
	// Terminal draws a bar redrawn in place; otherwise plain lines.
	Terminal bool
	// Color allows ANSI styling (bold stage names). Only honoured on a
	// terminal.
	Color bool
	// Quiet drops progress; messages and retries are still printed.
	Quiet bool
	// LineInterval is the least time between two plain progress lines
	// of the same stage (default 5s); a bar is redrawn at most every
	// 100ms.
	LineInterval time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// IsTerminal reports whether w is a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ColorAllowed reports whether ANSI styling may be written to w: a
// terminal, NO_COLOR (https://no-color.org) unset or empty, and TERM not
// "dumb". getenv is os.Getenv outside tests.
func ColorAllowed(w io.Writer, getenv func(string) string) bool {
	return IsTerminal(w) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

// For returns options for w decided from the environment: terminal and
// color detection.
func For(w io.Writer) Options {
	return Options{Terminal: IsTerminal(w), Color: ColorAllowed(w, os.Getenv)}
}

// Renderer writes progress to one writer. It is safe for concurrent use.
type Renderer struct {
	w    io.Writer
	opts Options

	mu       sync.Mutex
	stage    string
	drawn    bool // a bar is on the current line
	last     Update
	lastLine string    // plain mode: the last line printed
	lastAt   time.Time // when the last line or bar was written
	pending  bool      // plain mode: an update not printed yet
}

// New returns a Renderer writing to w.
func New(w io.Writer, opts Options) *Renderer {
	if opts.LineInterval <= 0 {
		opts.LineInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if !opts.Terminal {
		opts.Color = false
	}
	return &Renderer{w: w, opts: opts}
}

// Terminal reports whether the renderer draws a bar.
func (r *Renderer) Terminal() bool { return r.opts.Terminal }

// Bold styles s when color is allowed.
func (r *Renderer) Bold(s string) string {
	if r.opts.Color {
		return "\x1b[1m" + s + "\x1b[0m"
	}
	return s
}

// Stage starts a named stage; plain output names it on a line of its own.
func (r *Renderer) Stage(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.startStage(name)
}

func (r *Renderer) startStage(name string) {
	if name == r.stage {
		return
	}
	r.flushLocked()
	r.stage, r.last, r.lastLine, r.pending = name, Update{Stage: name}, "", false
	// "done" ends an operation: its figures are the final state, not
	// the start of more work.
	if r.opts.Quiet || name == "" || name == "done" {
		return
	}
	if r.opts.Terminal {
		r.drawBar(r.opts.Now()) // the stage name, until figures arrive
		return
	}
	fmt.Fprintf(r.w, "%s...\n", name)
	r.lastAt = r.opts.Now()
}

// Update reports progress. Plain output prints a line at most every
// LineInterval and only when something changed; a bar is redrawn at most
// ten times a second.
func (r *Renderer) Update(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if u.Stage != "" && u.Stage != r.stage {
		r.startStage(u.Stage)
	}
	u.Stage = r.stage
	if r.opts.Quiet {
		r.last = u
		return
	}
	now := r.opts.Now()
	if r.opts.Terminal {
		finished := u.BytesTotal > 0 && u.BytesDone >= u.BytesTotal
		if r.drawn && !finished && now.Sub(r.lastAt) < 100*time.Millisecond {
			r.last, r.pending = u, true
			return
		}
		r.last, r.pending = u, false
		r.drawBar(now)
		return
	}
	r.last = u
	line := Describe(u)
	if line == "" || line == r.lastLine {
		return
	}
	if now.Sub(r.lastAt) < r.opts.LineInterval {
		r.pending = true
		return
	}
	r.printLine(line, now)
}

func (r *Renderer) printLine(line string, now time.Time) {
	fmt.Fprintf(r.w, "%s: %s\n", r.stage, line)
	r.lastLine, r.lastAt, r.pending = line, now, false
}

// drawBar redraws the bar line; r.mu is held.
func (r *Renderer) drawBar(now time.Time) {
	const width = 24
	u := r.last
	var b strings.Builder
	b.WriteString("\r")
	b.WriteString(r.Bold(fmt.Sprintf("%-9s", u.Stage)))
	if pct, ok := percent(u); ok {
		filled := pct * width / 100
		fmt.Fprintf(&b, " [%s%s] %3d%%", strings.Repeat("#", filled), strings.Repeat("-", width-filled), pct)
	}
	if d := Describe(u); d != "" {
		b.WriteString(" ")
		b.WriteString(d)
	}
	b.WriteString("\x1b[K")
	io.WriteString(r.w, b.String())
	r.drawn, r.lastAt = true, now
}

// clearLocked removes a drawn bar so that a line can be printed.
func (r *Renderer) clearLocked() {
	if r.drawn {
		io.WriteString(r.w, "\r\x1b[K")
		r.drawn = false
	}
}

// flushLocked prints what rate limiting held back, so the last state of
// a stage is always shown, and ends a bar's line.
func (r *Renderer) flushLocked() {
	if r.opts.Quiet {
		return
	}
	if r.opts.Terminal {
		if r.pending {
			r.drawBar(r.opts.Now())
			r.pending = false
		}
		if r.drawn {
			io.WriteString(r.w, "\n")
			r.drawn = false
		}
		return
	}
	if r.pending {
		if line := Describe(r.last); line != "" && line != r.lastLine {
			r.printLine(line, r.opts.Now())
		}
		r.pending = false
	}
}

// Message prints a line for the user (above the bar on a terminal).
func (r *Renderer) Message(text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	redraw := r.drawn
	r.clearLocked()
	fmt.Fprintln(r.w, text)
	if redraw {
		r.drawBar(r.opts.Now())
	}
}

// Retry reports one retry of a request: once per attempt, with the reason
// and the wait before the next try.
func (r *Renderer) Retry(attempt, attempts int, what string, reason error, backoff time.Duration) {
	r.Message(RetryLine(attempt, attempts, what, reason, backoff))
}

// RetryLine is the text Retry prints; what is left out when the reason
// names it already.
func RetryLine(attempt, attempts int, what string, reason error, backoff time.Duration) string {
	for_ := ""
	if !strings.Contains(reason.Error(), what) {
		for_ = " for " + what
	}
	return fmt.Sprintf("retry %d of %d%s in %s: %v", attempt, attempts, for_, backoff.Round(time.Millisecond), reason)
}

// Done prints what is pending and ends the bar's line.
func (r *Renderer) Done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

// Clear removes the bar without printing a final state (before an error).
func (r *Renderer) Clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLocked()
	r.pending = false
}

func percent(u Update) (int, bool) {
	switch {
	case u.BytesTotal > 0:
		return int(min(u.BytesDone, u.BytesTotal) * 100 / u.BytesTotal), true
	case u.ObjectsTotal > 0:
		return int(min(u.ObjectsDone, u.ObjectsTotal) * 100 / u.ObjectsTotal), true
	}
	return 0, false
}

// Describe renders an update's figures in one line without the stage:
// bytes (of the expected total), delta parts, objects, rate and ETA.
func Describe(u Update) string {
	var parts []string
	switch {
	case u.BytesTotal > 0:
		parts = append(parts, fmt.Sprintf("%s of %s", Bytes(u.BytesDone), Bytes(u.BytesTotal)))
	case u.BytesDone > 0:
		parts = append(parts, Bytes(u.BytesDone))
	}
	if u.PartsTotal > 0 {
		parts = append(parts, fmt.Sprintf("delta part %d of %d", u.PartsDone, u.PartsTotal))
	}
	if u.ObjectsTotal > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d objects", u.ObjectsDone, u.ObjectsTotal))
	}
	if len(parts) == 0 {
		return ""
	}
	if u.Rate > 0 {
		parts = append(parts, Bytes(u.Rate)+"/s")
		eta := u.ETA
		if eta == 0 && u.BytesTotal > u.BytesDone {
			eta = time.Duration((u.BytesTotal-u.BytesDone)/u.Rate) * time.Second
		}
		if eta > 0 {
			parts = append(parts, "ETA "+eta.Round(time.Second).String())
		}
	}
	return strings.Join(parts, ", ")
}

// Bytes renders a byte count with a binary unit ("1.5 MiB").
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
