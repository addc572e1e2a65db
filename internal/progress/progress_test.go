package progress

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

// clock is a manual clock for rate limiting.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Unix(1_700_000_000, 0)} }

// feed sends a download of 316 objects and 3 MiB, one update per object,
// to r: what a pull reports.
func feed(r *Renderer, c *clock) {
	r.Stage("download")
	for i := uint64(1); i <= 316; i++ {
		r.Update(Update{Stage: "download", BytesDone: i * 10000, BytesTotal: 3160000, ObjectsDone: i, ObjectsTotal: 316, Rate: 1 << 20})
		c.advance(50 * time.Millisecond)
	}
	r.Retry(1, 5, "http://127.0.0.1:1/summary", errors.New("connection refused"), 250*time.Millisecond)
	r.Stage("deploy")
	r.Done()
}

func TestPipeOutputIsPlainAndRateLimited(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if IsTerminal(pw) {
		t.Fatal("a pipe is taken for a terminal")
	}
	if ColorAllowed(pw, func(string) string { return "" }) {
		t.Fatal("color allowed on a pipe")
	}
	c := newClock()
	opts := For(pw)
	opts.Now = c.now
	r := New(pw, opts)
	feed(r, c)
	pw.Close()
	out, err := io.ReadAll(pr)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	t.Logf("pipe output:\n%s", s)
	if strings.ContainsAny(s, "\r\x1b") {
		t.Fatalf("carriage return or ANSI escape in pipe output: %q", s)
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	// 316 updates over 15.8s at one line per 5s: a handful of lines,
	// never one per object.
	progressLines := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "download: ") {
			progressLines++
		}
	}
	if progressLines < 2 || progressLines > 6 {
		t.Fatalf("%d progress lines, want a few (rate-limited):\n%s", progressLines, s)
	}
	for _, want := range []string{"download...", "download: 3.0 MiB of 3.0 MiB, 316 of 316 objects, 1.0 MiB/s",
		"retry 1 of 5 for http://127.0.0.1:1/summary in 250ms: connection refused", "deploy..."} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestPipeRepeatsNothing(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := New(&buf, Options{Now: c.now, LineInterval: time.Second})
	r.Stage("summary")
	// A pull that gets nowhere reports the same (empty) state again and
	// again: nothing is printed for it.
	for range 24 {
		r.Update(Update{Stage: "summary"})
		c.advance(250 * time.Millisecond)
	}
	r.Done()
	if got := buf.String(); got != "summary...\n" {
		t.Fatalf("output %q, want only the stage line", got)
	}
}

func TestTerminalDrawsBar(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if !IsTerminal(tty) {
		t.Fatal("a pty is not taken for a terminal")
	}
	env := map[string]string{"TERM": "xterm"}
	if !ColorAllowed(tty, func(k string) string { return env[k] }) {
		t.Fatal("color refused on a terminal")
	}
	env["NO_COLOR"] = "1"
	if ColorAllowed(tty, func(k string) string { return env[k] }) {
		t.Fatal("NO_COLOR not honoured")
	}
	read := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once tty is closed
		read <- string(b)
	}()
	c := newClock()
	r := New(tty, Options{Terminal: IsTerminal(tty), Color: true, Now: c.now})
	feed(r, c)
	tty.Close()
	s := <-read
	if len(s) > 400 {
		t.Logf("terminal output ends: %q", s[len(s)-400:])
	}
	for _, want := range []string{"\r", "\x1b[1mdownload \x1b[0m [", "####", "100%", "3.0 MiB of 3.0 MiB", "\x1b[K",
		"retry 1 of 5 for http://127.0.0.1:1/summary in 250ms: connection refused", "\r\x1b[1mdeploy   \x1b[0m\x1b[K"} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q", want)
		}
	}
	// Redraws are limited to ten a second: 316 updates 50ms apart.
	if n := strings.Count(s, "\r\x1b[1mdownload"); n < 100 || n > 200 {
		t.Errorf("bar drawn %d times, want about 160", n)
	}
}

func TestQuiet(t *testing.T) {
	var buf bytes.Buffer
	c := newClock()
	r := New(&buf, Options{Quiet: true, Now: c.now})
	feed(r, c)
	want := "retry 1 of 5 for http://127.0.0.1:1/summary in 250ms: connection refused\n"
	if buf.String() != want {
		t.Fatalf("quiet output %q, want only the retry", buf.String())
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		u    Update
		want string
	}{
		{Update{}, ""},
		{Update{BytesDone: 2048, BytesTotal: 4096, PartsDone: 1, PartsTotal: 2, ObjectsDone: 3, ObjectsTotal: 3, Rate: 1024},
			"2.0 KiB of 4.0 KiB, delta part 1 of 2, 3 of 3 objects, 1.0 KiB/s, ETA 2s"},
		{Update{BytesDone: 100, ObjectsDone: 1, ObjectsTotal: 9}, "100 B, 1 of 9 objects"},
	} {
		if got := Describe(tc.u); got != tc.want {
			t.Errorf("Describe(%+v) = %q, want %q", tc.u, got, tc.want)
		}
	}
}
