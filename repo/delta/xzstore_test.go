package delta

import (
	"bytes"
	"math/rand"
	"os/exec"
	"testing"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/ulikunitz/xz"
)

// TestXZStored: the stored-chunk xz stream decodes to its input with
// liblzma's xz command and with the Go decoder, at sizes around the
// chunk and padding boundaries.
func TestXZStored(t *testing.T) {
	xzPath := testutil.RequireTool(t, "xz")
	for _, n := range []int{0, 1, 3, 65535, 65536, 65537, 200_003} {
		data := make([]byte, n)
		rand.New(rand.NewSource(int64(n))).Read(data)
		var buf bytes.Buffer
		if err := writeXZStored(&buf, data); err != nil {
			t.Fatal(err)
		}
		if over := buf.Len() - n; over > 64+3*(n/65536+1) {
			t.Errorf("%d bytes: %d bytes of overhead", n, over)
		}
		cmd := exec.Command(xzPath, "--decompress", "--stdout")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%d bytes: xz -d: %v", n, err)
		}
		if !bytes.Equal(out, data) {
			t.Errorf("%d bytes: xz -d gives %d different bytes", n, len(out))
		}
		r, err := xz.NewReader(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		var got bytes.Buffer
		if _, err := got.ReadFrom(r); err != nil {
			t.Fatalf("%d bytes: Go xz: %v", n, err)
		}
		if !bytes.Equal(got.Bytes(), data) {
			t.Errorf("%d bytes: Go xz gives different bytes", n)
		}
	}
}
