package delta

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math/rand"
	"os/exec"
	"testing"

	"github.com/osupdate/os-update/internal/lzma"
	"github.com/osupdate/os-update/internal/testutil"
)

// TestXZDecodersAgree: liblzma in-process, the xz command and the
// built-in decoder read the same parts to the same payload, and each
// refuses a damaged stream (whose part checksum matches, so the decoder
// is what must catch it) and a payload beyond the limit as malformed.
func TestXZDecodersAgree(t *testing.T) {
	xzCmd := testutil.RequireTool(t, "xz")
	decoders := map[string]xzDecoder{"built-in": {}, "xz command": {command: xzCmd}}
	if lzma.Available {
		decoders["liblzma"] = xzDecoder{liblzma: true}
	}
	rnd := rand.New(rand.NewSource(3))
	w := NewPartWriter()
	for i := 0; i < 200; i++ {
		b := make([]byte, 1+rnd.Intn(20000))
		if i%3 == 0 {
			rnd.Read(b)
		}
		w.Blob(b)
		w.Op(OpOpenSpliceAndClose, 0, 0, uint64(len(b)), 0)
	}
	payload, err := w.Part().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	var builtin bytes.Buffer
	if err := EncodePart(&builtin, payload, true); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(xzCmd, "--format=xz", "--check=crc64", "--stdout", "-6")
	cmd.Stdin = bytes.NewReader(payload)
	byCmd, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	parts := map[string][]byte{"built-in encoder": builtin.Bytes(), "xz -6": append([]byte{CompressionXZ}, byCmd...)}
	read := func(dec xzDecoder, raw []byte, limit uint64) ([]byte, error) {
		src := partSource{r: bytes.NewReader(raw), size: uint64(len(raw)), checksum: sha256.Sum256(raw)}
		p, err := readPart(context.Background(), src, limit, t.TempDir(), 0, dec)
		if err != nil {
			return nil, err
		}
		defer p.Close()
		out := make([]byte, p.spool.n)
		if _, err := p.spool.ReadAt(out, 0); err != nil {
			return nil, err
		}
		return out, nil
	}
	for dn, dec := range decoders {
		for pn, raw := range parts {
			got, err := read(dec, raw, maxPayload(uint64(len(payload))))
			if err != nil {
				t.Fatalf("%s reading %s: %v", dn, pn, err)
			}
			if !bytes.Equal(got, payload) {
				t.Fatalf("%s reading %s: payload differs", dn, pn)
			}
			if _, err := read(dec, raw, uint64(len(payload))-1); !errors.Is(err, ErrMalformed) {
				t.Errorf("%s reading %s with a limit below the payload: got %v, want ErrMalformed", dn, pn, err)
			}
			for what, bad := range map[string][]byte{
				"truncated": raw[:len(raw)*2/3],
				"corrupt":   flipByte(raw, len(raw)/2),
			} {
				if _, err := read(dec, bad, maxPayload(uint64(len(payload)))); !errors.Is(err, ErrMalformed) {
					t.Errorf("%s reading %s %s: got %v, want ErrMalformed", dn, what, pn, err)
				}
			}
		}
	}
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x40
	return c
}
