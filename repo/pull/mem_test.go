package pull

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
)

// allocBound is a generous ceiling on what a pull of the small fixture
// may allocate in total, hostile part or object included: holding any of
// the hostile bodies below would exceed it.
const allocBound = 200 << 20

// totalAlloc runs fn and returns the bytes it allocated (cumulative, so
// garbage collection timing does not matter).
func totalAlloc(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeltaHostilePartMemory serves a from-scratch delta whose part is
// replaced by a huge one: a 3 GiB part its superblock declares (above
// delta.MaxPartSize), and a 256 MiB part within the limit with a valid
// checksum but a garbage payload. The delta fails with an error naming
// the delta and the part, the object walk completes the pull, and the
// pull's allocations stay far below the part's size.
func TestDeltaHostilePartMemory(t *testing.T) {
	cases := []struct {
		name      string
		size      uint64
		checksum  bool
		want      string
		wantFetch bool
	}{
		{"3 GiB declared", 3 << 30, false, "exceeds", false},
		{"256 MiB garbage payload", 256 << 20, true, "opcode", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			st, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			sbPath := filepath.Join(f.served.Path(), delta.SuperblockPath(object.ZeroChecksum, f.commit))
			raw, err := os.ReadFile(sbPath)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := delta.DecodeSuperblock(raw)
			if err != nil {
				t.Fatal(err)
			}
			part := filepath.Join(f.served.Path(), delta.PartPath(object.ZeroChecksum, f.commit, 0))
			if err := os.Truncate(part, 0); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(part, int64(tc.size)); err != nil { // sparse zeros: flag 0, uncompressed
				t.Fatal(err)
			}
			sb.Parts[0].Size = tc.size
			sb.Parts[0].USize = 3 << 30
			if tc.checksum {
				pf, err := os.Open(part)
				if err != nil {
					t.Fatal(err)
				}
				h := sha256.New()
				io.Copy(h, pf)
				pf.Close()
				copy(sb.Parts[0].Checksum[:], h.Sum(nil))
			}
			if raw, err = sb.Marshal(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(sbPath, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			// The summary lists the new superblock's digest.
			servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
			local := newLocal(t, repo.ModeBare)
			f.srv.Log.Reset()
			var res *Result
			alloc := totalAlloc(func() {
				res, err = Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}})
			})
			t.Logf("pull allocated %d MiB in total", alloc>>20)
			if err != nil {
				t.Fatal(err)
			}
			if res.DeltasUsed != 0 || len(res.DeltaFailures) != 1 {
				t.Fatalf("result %+v", res)
			}
			msg := res.DeltaFailures[0].Error()
			t.Logf("delta refused: %s", msg)
			for _, want := range []string{st.Name.String(), "part 0", tc.want} {
				if !strings.Contains(msg, want) {
					t.Errorf("delta error %q does not mention %q", msg, want)
				}
			}
			fetched := false
			for _, e := range f.srv.Log.Entries() {
				if strings.HasSuffix(e.Path, "/0") && strings.Contains(e.Path, "/deltas/") {
					fetched = true
				}
			}
			if fetched != tc.wantFetch {
				t.Errorf("part fetched: %v, want %v", fetched, tc.wantFetch)
			}
			if alloc > allocBound {
				t.Errorf("pull allocated %d MiB, want below %d MiB", alloc>>20, allocBound>>20)
			}
			fsckClean(t, local)
			checkoutEqual(t, local, f.commit, f.tree)
		})
	}
}

// TestObjectDeclaredSizeMemory: a .filez whose header declares 3 GiB and
// whose body inflates to 256 MiB is refused, naming the object, and the
// pull's allocations stay far below either size: content streams to a
// temporary file, never to memory.
func TestObjectDeclaredSizeMemory(t *testing.T) {
	f := newFixture(t)
	cm, err := f.served.LoadCommit(f.commit)
	if err != nil {
		t.Fatal(err)
	}
	root, err := f.served.LoadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	var file object.Checksum
	for _, de := range root.Dirs {
		d, _ := f.served.LoadDirTree(de.Tree)
		for _, fe := range d.Files {
			file = fe.Checksum
		}
		if !file.IsZero() {
			break
		}
	}
	if file.IsZero() {
		t.Fatal("no content object in the fixture")
	}
	hdr, err := (&object.FileHeader{Mode: object.ModeRegular | 0o644}).FilezHeader(3 << 30)
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	body.Write(hdr)
	zw, _ := flate.NewWriter(&body, flate.BestCompression)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 256; i++ {
		zw.Write(zeros)
	}
	zw.Close()
	zeros = nil
	h, err := serve.NewHandler(f.served.Path(), serve.Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := "/objects/" + object.LoosePath(file, object.TypeFile, true)
	srv := servetest.ServeHandler(t, replaceBody{next: h, path: path, body: body.Bytes()}, nil)
	local := newLocal(t, repo.ModeBare)
	alloc := totalAlloc(func() {
		_, err = Pull(context.Background(), local, f.source(t, srv.URL), Options{Refs: []string{"os/main"}, Retries: 0, RetryBackoff: time.Millisecond})
	})
	t.Logf("pull allocated %d MiB in total: %v", alloc>>20, err)
	if err == nil || !strings.Contains(err.Error(), file.String()) {
		t.Fatalf("pull: %v", err)
	}
	if alloc > allocBound {
		t.Errorf("pull allocated %d MiB, want below %d MiB", alloc>>20, allocBound>>20)
	}
	if ok, _ := local.HasObject(file, object.TypeFile); ok {
		t.Fatal("object stored")
	}
	fsckClean(t, local)
}
