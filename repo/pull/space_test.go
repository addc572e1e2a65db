package pull

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/serve/servetest"
	"github.com/osupdate/os-update/repo/sign"
)

// bigFixture is the pull fixture with 12 MiB of incompressible data
// added to the tree.
func bigFixture(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t)
	big := make([]byte, 12<<20)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(f.tree, "usr/big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	f.commit = servetest.Commit(t, f.served, f.tree, "os/main", "big", []sign.Signer{f.signer}, []sign.Signer{f.signer})
	return f
}

func localOn(t *testing.T, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(dir, "local"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

// contentObjects counts the content objects in a repository.
func contentObjects(t *testing.T, r *repo.Repo) int {
	t.Helper()
	n := 0
	if err := r.ListObjects(func(o object.Name) error {
		if o.Type == object.TypeFile {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func wantNoSpace(t *testing.T, err error, path string, mentions ...string) {
	t.Helper()
	var ns *fsutil.NoSpaceError
	if !errors.As(err, &ns) {
		t.Fatalf("got %v, want a NoSpaceError", err)
	}
	for _, m := range append([]string{path, "needed", "free"}, mentions...) {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error %q does not mention %q", err, m)
		}
	}
}

// A delta pull whose superblock declares more than the file system has is
// refused before any part or content object is fetched or written.
func TestPullRefusedOnSmallFilesystemDelta(t *testing.T) {
	dir := testutil.MountTmpfs(t, "size=8m")
	f := bigFixture(t)
	if _, err := delta.Generate(context.Background(), f.served, object.ZeroChecksum, f.commit, delta.GenerateOptions{}); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	local := localOn(t, dir)
	f.srv.Log.Reset()
	_, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}})
	wantNoSpace(t, err, local.Path(), "min-free-space-percent=3")
	for _, e := range f.srv.Log.Entries() {
		if strings.Contains(e.Path, "/deltas/") && !strings.HasSuffix(e.Path, "superblock") || strings.HasSuffix(e.Path, ".filez") {
			t.Errorf("fetched %s after the space check failed", e.Path)
		}
	}
	if n := contentObjects(t, local); n != 0 {
		t.Errorf("%d content objects written", n)
	}
	if _, err := local.ReadRef("origin", "os/main"); err == nil {
		t.Error("the ref moved")
	}
	fsckClean(t, local)
}

// The repository's min-free-space options are honoured for an object
// pull: size, percent, and size winning over percent.
func TestPullHonoursMinFreeSpaceOptions(t *testing.T) {
	dir := testutil.MountTmpfs(t, "size=48m")
	f := bigFixture(t)
	local := localOn(t, dir)
	pull := func() error {
		_, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}, DisableDeltas: true})
		return err
	}
	// Without "ostree.sizes" the walk cannot know the total: it stops at
	// the object that would eat into the reserve.
	local.Config().Set("core", "min-free-space-size", "40MB")
	wantNoSpace(t, pull(), local.Path(), "min-free-space-size=40MB")
	if sp, err := fsutil.StatSpace(local.Path()); err != nil || sp.Free < 40<<20 {
		t.Errorf("the pull ate into the reserve: %d bytes free (%v)", sp.Free, err)
	}
	if _, err := local.ReadRef("origin", "os/main"); err == nil {
		t.Error("the ref moved")
	}
	fsckClean(t, local)
	local.Config().Delete("core", "min-free-space-size")
	local.Config().Set("core", "min-free-space-percent", "99")
	wantNoSpace(t, pull(), local.Path(), "min-free-space-percent=99")
	// Size wins over percent: 1MB leaves room for the 12 MiB commit.
	local.Config().Set("core", "min-free-space-size", "1MB")
	if err := pull(); err != nil {
		t.Fatalf("pull with min-free-space-size=1MB (percent 99 ignored): %v", err)
	}
	fsckClean(t, local)
	checkoutEqual(t, local, f.commit, f.tree)
}

// withSizes recommits the fixture's tree with "ostree.sizes" metadata, as
// `ostree commit --generate-sizes` writes it: (checksum, varint archived
// size, varint unpacked size) for every content object.
func withSizes(t *testing.T, f *fixture) {
	t.Helper()
	set := repo.Reachable{}
	if err := f.served.TraverseCommit(f.commit, 0, set); err != nil {
		t.Fatal(err)
	}
	var entries []gvariant.Value
	for n := range set {
		if n.Type != object.TypeFile {
			continue
		}
		fi, err := os.Stat(f.served.ObjectPath(n.Checksum, n.Type))
		if err != nil {
			t.Fatal(err)
		}
		ct, err := f.served.OpenContent(n.Checksum)
		if err != nil {
			t.Fatal(err)
		}
		ct.Close()
		enc := binary.AppendUvarint(nil, uint64(fi.Size()))
		enc = binary.AppendUvarint(enc, ct.Size)
		entries = append(entries, []gvariant.Value{append([]byte{}, n.Checksum[:]...), enc})
	}
	var md object.Metadata
	md.Set("ostree.sizes", gvariant.NewVariant("a(ayay)", entries))
	c, err := f.served.CommitDir(context.Background(), f.tree, repo.CommitOptions{Branch: "os/main", Subject: "sized", Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.SignCommit(f.served, c, f.signer); err != nil {
		t.Fatal(err)
	}
	servetest.Commit(t, f.served, f.tree, "os/unused", "refresh summary", nil, []sign.Signer{f.signer})
	f.commit = c
}

// With "ostree.sizes" in the commit, an object pull is refused before any
// content object is fetched or written.
func TestPullRefusedBeforeContentWithSizes(t *testing.T) {
	dir := testutil.MountTmpfs(t, "size=8m")
	f := bigFixture(t)
	withSizes(t, f)
	local := localOn(t, dir)
	f.srv.Log.Reset()
	_, err := Pull(context.Background(), local, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}, DisableDeltas: true})
	wantNoSpace(t, err, local.Path(), "min-free-space-percent=3")
	for _, e := range f.srv.Log.Entries() {
		if strings.HasSuffix(e.Path, ".filez") || strings.HasSuffix(e.Path, ".dirtree") {
			t.Errorf("fetched %s after the space check failed", e.Path)
		}
	}
	if n := contentObjects(t, local); n != 0 {
		t.Errorf("%d content objects written", n)
	}
	fsckClean(t, local)
	// The same pull succeeds on a file system large enough.
	big := testutil.MountTmpfs(t, "size=32m")
	ok := localOn(t, big)
	if _, err := Pull(context.Background(), ok, f.source(t, f.srv.URL), Options{Refs: []string{"os/main"}, DisableDeltas: true}); err != nil {
		t.Fatalf("pull into 32 MiB: %v", err)
	}
	fsckClean(t, ok)
}
