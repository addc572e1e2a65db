package client

import (
	"bytes"
	"strings"
	"testing"
)

func TestProgressBarOnTerminal(t *testing.T) {
	var out bytes.Buffer
	p := &progressBar{e: &env{stdout: &out}, tty: true}
	p.update("download", "bytes", 50, 5<<20, 10<<20, 1<<20, 5)
	line := out.String()
	for _, want := range []string{"\rdownload", "[###############---------------]", " 50%", "5.0 MiB/10.0 MiB", "1.0 MiB/s", "ETA 5s"} {
		if !strings.Contains(line, want) {
			t.Errorf("bar %q lacks %q", line, want)
		}
	}
	p.clear()
	if !strings.HasSuffix(out.String(), "\r\x1b[K") {
		t.Errorf("clear did not erase the line: %q", out.String())
	}
}

func TestProgressPlainLines(t *testing.T) {
	var out bytes.Buffer
	p := &progressBar{e: &env{stdout: &out}}
	for i := uint64(0); i <= 100; i += 5 {
		p.update("deploy", "files", uint32(i), i, 100, 0, 0)
	}
	got := out.String()
	want := "deploy...\ndeploy: 25% (25 files of 100 files)\ndeploy: 50% (50 files of 100 files)\n" +
		"deploy: 75% (75 files of 100 files)\ndeploy: 100% (100 files of 100 files)\n"
	if got != want {
		t.Fatalf("plain progress:\n%q\nwant\n%q", got, want)
	}
}
