package lzma

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"os/exec"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
)

func requireCgo(t *testing.T) {
	if !Available {
		t.Skip("built without cgo")
	}
}

// sample is compressible data with some random stretches.
func sample(n int) []byte {
	r := rand.New(rand.NewSource(1))
	var b bytes.Buffer
	for b.Len() < n {
		if r.Intn(4) == 0 {
			chunk := make([]byte, 1000)
			r.Read(chunk)
			b.Write(chunk)
		} else {
			b.WriteString(strings.Repeat("the quick brown fox ", 1+r.Intn(50)))
		}
	}
	return b.Bytes()[:n]
}

func xzCompress(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	xz := testutil.RequireTool(t, "xz")
	cmd := exec.Command(xz, append([]string{"--format=xz", "--stdout"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func decode(src io.Reader, memlimit uint64, bufSize int) ([]byte, error) {
	z, err := NewReader(src, memlimit)
	if err != nil {
		return nil, err
	}
	defer z.Close()
	var out bytes.Buffer
	buf := make([]byte, bufSize)
	_, err = io.CopyBuffer(&out, struct{ io.Reader }{z}, buf)
	return out.Bytes(), err
}

// oneByte returns its reader's data a byte at a time.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(1, len(p))]) }

func TestRoundTrip(t *testing.T) {
	requireCgo(t)
	data := sample(1 << 20)
	for _, c := range []struct {
		name string
		args []string
	}{
		{"crc64 -6", []string{"--check=crc64", "-6"}},
		{"sha256 -0", []string{"--check=sha256", "-0"}},
		{"no check", []string{"--check=none", "-1"}},
	} {
		z := xzCompress(t, data, c.args...)
		for _, src := range []struct {
			name string
			r    io.Reader
			buf  int
		}{
			{"whole", bytes.NewReader(z), 64 << 10},
			{"byte by byte, small output", oneByte{bytes.NewReader(z)}, 7},
		} {
			got, err := decode(src.r, 256<<20, src.buf)
			if err != nil {
				t.Fatalf("%s, %s: %v", c.name, src.name, err)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("%s, %s: decoded %d bytes, differ from the %d compressed", c.name, src.name, len(got), len(data))
			}
		}
	}
}

func TestTrailingBytesIgnored(t *testing.T) {
	requireCgo(t)
	data := sample(100 << 10)
	z := append(xzCompress(t, data), []byte("trailing garbage")...)
	got, err := decode(bytes.NewReader(z), 256<<20, 4096)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("decode with trailing bytes: %d bytes, %v", len(got), err)
	}
}

func TestBadStreams(t *testing.T) {
	requireCgo(t)
	data := sample(1 << 20)
	z := xzCompress(t, data, "--check=crc64")
	corrupt := bytes.Clone(z)
	corrupt[len(corrupt)/2] ^= 0x55
	check := bytes.Clone(z)
	check[len(check)-20] ^= 1 // inside the CRC64 or index
	for _, c := range []struct {
		name, in string
		want     string
	}{
		{"truncated", string(z[:len(z)/2]), "unexpected EOF"},
		{"truncated in the footer", string(z[:len(z)-3]), "unexpected EOF"},
		{"empty", "", "unexpected EOF"},
		{"not xz", "hello, this is not xz at all", "not in the .xz format"},
		{"corrupt", string(corrupt), "corrupt"},
		{"bad check or index", string(check), "corrupt"},
	} {
		_, err := decode(strings.NewReader(c.in), 256<<20, 64<<10)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", c.name, err, c.want)
		}
	}
	// A dictionary larger than the memory limit.
	big := xzCompress(t, data, "--lzma2=dict=64MiB")
	if _, err := decode(bytes.NewReader(big), 8<<20, 64<<10); err == nil || !strings.Contains(err.Error(), "more memory") {
		t.Errorf("64 MiB dictionary with an 8 MiB limit: got %v", err)
	}
}

func TestSourceError(t *testing.T) {
	requireCgo(t)
	z := xzCompress(t, sample(1<<20))
	boom := errors.New("connection reset")
	_, err := decode(io.MultiReader(bytes.NewReader(z[:1000]), errReader{boom}), 256<<20, 64<<10)
	if !errors.Is(err, boom) {
		t.Fatalf("got %v, want the source's error", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
