package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// baseImage encapsulates the test OS and returns the image.
func baseImage(t *testing.T) (v1.Image, object.Checksum) {
	t.Helper()
	src, c := sourceRepo(t, "package b v1")
	img, cleanup, err := BuildImage(context.Background(), src, c, EncapsulateOptions{TmpDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return img, c
}

// rebuild makes an image from base with layers inserted before its
// first layer and after its last, keeping its labels.
func rebuild(t *testing.T, base v1.Image, before, after []v1.Layer) string {
	t.Helper()
	ls, err := base.Layers()
	if err != nil {
		t.Fatal(err)
	}
	all := append(append(append([]v1.Layer{}, before...), ls...), after...)
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, all...); err != nil {
		t.Fatal(err)
	}
	bcf, _ := base.ConfigFile()
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = bcf.Config.Labels
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := writeLayout(dir, img, ""); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir
}

type tarEntry struct {
	name, link, data string
	typ              byte
}

func tarLayer(t *testing.T, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.data)
	}
	tw.Close()
	return buf.Bytes()
}

// importFails imports imageRef into a fresh repository, expects an error
// containing want, and checks that no ref moved and no commit appeared.
func importFails(t *testing.T, imageRef, want string) {
	t.Helper()
	dst := newRepo(t, repo.ModeBare)
	_, err := Import(context.Background(), dst, imageRef, ImportOptions{Ref: "target"})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("import: %v, want an error containing %q", err, want)
	}
	refs, err := dst.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Errorf("refs after a failed import: %v", refs)
	}
}

func TestImportDerivedLayers(t *testing.T) {
	img, base := baseImage(t)
	layer := tarLayer(t, []tarEntry{
		{name: "usr/", typ: tar.TypeDir},
		{name: "usr/bin/", typ: tar.TypeDir},
		{name: "usr/bin/added", typ: tar.TypeReg, data: "added by a Containerfile\n"},
		{name: "usr/bin/added-link", typ: tar.TypeLink, link: "usr/bin/added"},
		{name: "usr/lib/pkga/.wh.a2", typ: tar.TypeReg},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/os-release", typ: tar.TypeReg, data: "ID=derived\n"},
		{name: "etc/.wh.removeme", typ: tar.TypeReg},
		{name: "etc/hosts", typ: tar.TypeReg},                   // an empty RUN mount point: dropped
		{name: "etc/hostname", typ: tar.TypeReg, data: "box\n"}, // a real file: kept
		{name: "etc/opaque.d/", typ: tar.TypeDir},
		{name: "etc/opaque.d/new", typ: tar.TypeReg, data: "new"},
		{name: "etc/opaque.d/.wh..wh..opq", typ: tar.TypeReg},
		{name: "sysroot/ostree/repo/objects/00/ignored", typ: tar.TypeReg, data: "x"},
	})
	ref := rebuild(t, img, nil, []v1.Layer{static.NewLayer(layer, types.OCIUncompressedLayer)})
	dst := newRepo(t, repo.ModeBare)
	res, err := Import(context.Background(), dst, ref, ImportOptions{Ref: "derived"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Derived != 1 || res.BaseCommit != base || res.Commit == base {
		t.Fatalf("result %+v", res)
	}
	cm, err := dst.LoadCommit(res.Commit)
	if err != nil || cm.Parent != base {
		t.Fatalf("derived commit parent %v %v, want %s", cm, err, base)
	}
	added, removed, changed := treeDiff(t, dst, base, res.Commit)
	want := func(name string, got []string, w ...string) {
		if strings.Join(got, " ") != strings.Join(w, " ") {
			t.Errorf("%s: %q, want %q", name, got, w)
		}
	}
	want("added", added, "/usr/bin/added", "/usr/bin/added-link", "/usr/etc/hostname", "/usr/etc/opaque.d/new")
	want("removed", removed, "/usr/etc/opaque.d/sub", "/usr/etc/opaque.d/sub/old", "/usr/etc/removeme", "/usr/lib/pkga/a2")
	want("changed", changed, "/usr/etc/os-release")
	v, _ := dst.ViewCommit(res.Commit)
	if b, err := v.ReadFile("/usr/etc/os-release", 100); err != nil || string(b) != "ID=derived\n" {
		t.Errorf("os-release: %q %v", b, err)
	}
	ostreeFsck(t, dst)
}

func TestImportRejectsHostileImages(t *testing.T) {
	img, _ := baseImage(t)
	outside := t.TempDir()
	plain := func(entries ...tarEntry) v1.Layer {
		return static.NewLayer(tarLayer(t, entries), types.OCIUncompressedLayer)
	}
	derived := func(l v1.Layer) string { return rebuild(t, img, nil, []v1.Layer{l}) }

	t.Run("dotdot in derived layer", func(t *testing.T) {
		importFails(t, derived(plain(tarEntry{name: "usr/../../escaped", typ: tar.TypeReg, data: "x"})), `".."`)
	})
	t.Run("dotdot in ostree layer", func(t *testing.T) {
		l := plain(tarEntry{name: "sysroot/ostree/repo/objects/../../../../x", typ: tar.TypeReg, data: "x"})
		importFails(t, rebuild(t, img, []v1.Layer{l}, nil), `".."`)
	})
	t.Run("write beneath an absolute symlink", func(t *testing.T) {
		importFails(t, derived(plain(
			tarEntry{name: "usr/lib/escape", typ: tar.TypeSymlink, link: outside},
			tarEntry{name: "usr/lib/escape/pwned", typ: tar.TypeReg, data: "x"},
		)), "not a directory")
		if ents, _ := os.ReadDir(outside); len(ents) != 0 {
			t.Fatalf("written outside the repository: %v", ents)
		}
	})
	t.Run("device node", func(t *testing.T) {
		importFails(t, derived(plain(tarEntry{name: "usr/dev-null", typ: tar.TypeChar})), "cannot be stored")
	})
	t.Run("truncated derived layer", func(t *testing.T) {
		b := tarLayer(t, []tarEntry{{name: "usr/big", typ: tar.TypeReg, data: strings.Repeat("x", 100000)}})
		importFails(t, derived(static.NewLayer(b[:50000], types.OCIUncompressedLayer)), "unexpected EOF")
	})
	t.Run("truncated ostree layer", func(t *testing.T) {
		ls, _ := img.Layers()
		rc, _ := ls[0].Compressed()
		gz, _ := io.ReadAll(rc)
		l := static.NewLayer(gz[:len(gz)/2], types.OCILayer)
		importFails(t, rebuild(t, img, []v1.Layer{l}, nil), "unexpected EOF")
	})
	t.Run("object not matching its name", func(t *testing.T) {
		bogus := objectPath(object.Checksum{1, 2, 3}, "file")
		importFails(t, rebuild(t, img, []v1.Layer{plain(tarEntry{name: bogus, typ: tar.TypeReg, data: "not that"})}, nil), "checksum mismatch")
	})
	t.Run("layer digest mismatch", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		if err := writeLayout(dir, img, ""); err != nil {
			t.Fatal(err)
		}
		mf, _ := img.Manifest()
		// Layer 0's blob replaced by layer 1's: a valid layer, the wrong one.
		a := filepath.Join(dir, "blobs/sha256", mf.Layers[0].Digest.Hex)
		b := filepath.Join(dir, "blobs/sha256", mf.Layers[1].Digest.Hex)
		data, err := os.ReadFile(b)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(a, data, 0o644); err != nil {
			t.Fatal(err)
		}
		importFails(t, "oci:"+dir, "digest mismatch")
	})
	t.Run("not an ostree image", func(t *testing.T) {
		l := plain(tarEntry{name: "usr/bin/x", typ: tar.TypeReg, data: "x"})
		plainImg, _ := mutate.AppendLayers(empty.Image, l)
		dir := filepath.Join(t.TempDir(), "layout")
		if err := writeLayout(dir, plainImg, ""); err != nil {
			t.Fatal(err)
		}
		importFails(t, "oci:"+dir, "not an ostree container image")
	})
	t.Run("whiteout of the kernel", func(t *testing.T) {
		importFails(t, derived(plain(tarEntry{name: "usr/lib/.wh.modules", typ: tar.TypeReg})), "not bootable")
	})
}

func TestImportNonBootable(t *testing.T) {
	testutil.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/sh"), []byte("no kernel here"), 0o755)
	src := newRepo(t, repo.ModeBare)
	commitTree(t, src, root, "0")
	dir := t.TempDir()
	if _, err := Encapsulate(context.Background(), src, "os/test", "oci:"+dir, EncapsulateOptions{}); err != nil {
		t.Fatal(err)
	}
	importFails(t, "oci:"+dir, "not bootable")
}

// A big layer streams: the heap stays far below the file's size.
func TestImportHugeLayerBoundedMemory(t *testing.T) {
	img, _ := baseImage(t)
	const size = 256 << 20
	opener := func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			tw.WriteHeader(&tar.Header{Name: "usr/share/huge", Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: epoch})
			_, err := io.Copy(tw, io.LimitReader(zeros{}, size))
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		return pr, nil
	}
	l, err := tarball.LayerFromOpener(opener, tarball.WithCompressionLevel(1))
	if err != nil {
		t.Fatal(err)
	}
	ref := rebuild(t, img, nil, []v1.Layer{l})
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	dst := newRepo(t, repo.ModeBare)
	res, err := Import(context.Background(), dst, ref, ImportOptions{Ref: "huge"})
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := dst.ViewCommit(res.Commit)
	e, err := v.Lookup("/usr/share/huge")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Open(e)
	if err != nil || c.Size != size {
		t.Fatalf("huge file: %v size %d", err, c.Size)
	}
	c.Close()
	if p := peak.Load(); p > 96<<20 {
		t.Errorf("heap peaked at %d MiB importing a %d MiB layer: not streaming", p>>20, size>>20)
	}
}

// treeDiff lists the paths only in b (added), only in a (removed), and
// files whose content object differs (changed), each sorted.
func treeDiff(t *testing.T, r *repo.Repo, a, b object.Checksum) (added, removed, changed []string) {
	t.Helper()
	paths := func(c object.Checksum) map[string]object.Checksum {
		v, err := r.ViewCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]object.Checksum{}
		err = v.Walk("/", func(e repo.TreeEntry) error {
			out[e.Path] = e.File
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	before, after := paths(a), paths(b)
	for p, c := range after {
		if old, ok := before[p]; !ok {
			added = append(added, p)
		} else if old != c {
			changed = append(changed, p)
		}
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			removed = append(removed, p)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	sort.Strings(changed)
	return added, removed, changed
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
