package container

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// osTree writes a bootable tree: the sample tree (modes, xattrs,
// hardlinks, symlinks) with /etc moved to /usr/etc, a kernel, two
// "packages" and an empty /sysroot, as compose leaves it.
func osTree(t *testing.T, root string, pkgb string) {
	t.Helper()
	testutil.MakeSampleTree(t, root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")))
	files := map[string]string{
		"usr/lib/modules/6.1.0-test/vmlinuz":       "kernel image",
		"usr/lib/modules/6.1.0-test/initramfs.img": "initramfs",
		"usr/lib/modules/6.1.0-test/kernel/fs.ko":  "module",
		"usr/lib/pkga/a1":                          "package a, file 1",
		"usr/lib/pkga/a2":                          "package a, file 2",
		"usr/lib/pkgb/b1":                          pkgb,
		"usr/etc/os-release":                       "ID=test\n",
		"usr/etc/removeme":                         "to be removed by a derived image\n",
	}
	for p, c := range files {
		must(os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755))
		must(os.WriteFile(filepath.Join(root, p), []byte(c), 0o644))
	}
	for _, d := range []string{"sysroot", "var/tmp", "usr/etc/opaque.d/sub"} {
		must(os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(root, "usr/etc/opaque.d/sub/old"), []byte("old"), 0o644))
}

// commitTree commits root into a new repository of the given mode, with
// a version and detached metadata.
func commitTree(t *testing.T, r *repo.Repo, root, version string) object.Checksum {
	t.Helper()
	ctx := context.Background()
	md := object.Metadata{}
	md.Set("version", gvariant.NewVariant("s", version))
	c, err := r.CommitDir(ctx, root, repo.CommitOptions{
		Branch: "os/test", Subject: "test " + version, Timestamp: time.Unix(1700000000, 0), Metadata: md,
	})
	if err != nil {
		t.Fatal(err)
	}
	err = r.Update(ctx, func(tx *repo.Transaction) error {
		dm := object.Metadata{}
		dm.Set("test.detached", gvariant.NewVariant("s", "signature-ish"))
		return tx.WriteCommitMeta(c, dm)
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newRepo(t *testing.T, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func sourceRepo(t *testing.T, pkgb string) (*repo.Repo, object.Checksum) {
	t.Helper()
	testutil.RequireRoot(t)
	root := filepath.Join(t.TempDir(), "root")
	osTree(t, root, pkgb)
	r := newRepo(t, repo.ModeBare)
	return r, commitTree(t, r, root, "1.0")
}

func ostreeFsck(t *testing.T, r *repo.Repo) {
	t.Helper()
	ostree := testutil.RequireTool(t, "ostree")
	if out, stderr, err := testutil.RunErr(ostree, "fsck", "--repo="+r.Path()); err != nil {
		t.Fatalf("ostree fsck: %v\n%s%s", err, out, stderr)
	}
}

func TestEncapsulateImportRoundTrip(t *testing.T) {
	src, c := sourceRepo(t, "package b v1")
	ctx := context.Background()
	dir := t.TempDir()
	res, err := Encapsulate(ctx, src, "os/test", "oci:"+dir+"/img:v1", EncapsulateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != c || res.Layers < 4 {
		t.Fatalf("encapsulate: %+v, want commit %s and >= 4 layers (kernel, packages, rest)", res, c)
	}
	img, cleanup, err := ImageRef{Transport: TransportOCI, Path: dir + "/img", Tag: "v1"}.open(ctx, false, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	l := cf.Config.Labels
	if l[LabelCommit] != c.String() || l[LabelVersion] != "1.0" || l[LabelBootc] != "1" || l[LabelLinux] != "6.1.0-test" {
		t.Errorf("labels %v", l)
	}
	if l[LabelFinalDiff] != cf.RootFS.DiffIDs[len(cf.RootFS.DiffIDs)-1].String() {
		t.Errorf("final diffid %s is not the last layer's", l[LabelFinalDiff])
	}
	mf, _ := img.Manifest()
	var comps []string
	for _, d := range mf.Layers {
		comps = append(comps, d.Annotations[AnnotationComponents])
	}
	joined := strings.Join(comps, " ")
	for _, want := range []string{"kernel", "usr/lib/pkga", "usr/lib/pkgb"} {
		if !strings.Contains(joined, want) {
			t.Errorf("layer components %q lack %s", comps, want)
		}
	}

	for _, mode := range []repo.Mode{repo.ModeBare, repo.ModeArchive} {
		dst := newRepo(t, mode)
		ir, err := Import(ctx, dst, "oci:"+dir+"/img:v1", ImportOptions{Ref: "imported/v1"})
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if ir.Commit != c || ir.BaseCommit != c {
			t.Fatalf("%s: imported %s, source commit %s: not lossless", mode, ir.Commit, c)
		}
		got, err := dst.ReadRef("", "imported/v1")
		if err != nil || got != c {
			t.Fatalf("%s: ref: %s %v", mode, got, err)
		}
		dm, err := dst.ReadCommitMeta(c)
		if err != nil || dm.String("test.detached") != "signature-ish" {
			t.Errorf("%s: detached metadata lost: %v %v", mode, dm, err)
		}
		for _, d := range mf.Layers {
			if b, err := dst.ReadRef("", BlobRef(d.Digest.String())); err != nil || b != c {
				t.Errorf("%s: blob ref for %s: %s %v", mode, d.Digest, b, err)
			}
		}
		ostreeFsck(t, dst)
	}
}

func TestEncapsulateReproducible(t *testing.T) {
	src, _ := sourceRepo(t, "package b v1")
	ctx := context.Background()
	dir := t.TempDir()
	var digests []string
	var archives [][]byte
	for i := 0; i < 2; i++ {
		res, err := Encapsulate(ctx, src, "os/test", "oci-archive:"+filepath.Join(dir, "a.tar"), EncapsulateOptions{MaxLayers: 3})
		if err != nil {
			t.Fatal(err)
		}
		if res.Layers != 3 {
			t.Errorf("--max-layers 3 gave %d layers", res.Layers)
		}
		b, err := os.ReadFile(filepath.Join(dir, "a.tar"))
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.ManifestDigest)
		archives = append(archives, b)
	}
	if digests[0] != digests[1] || !bytes.Equal(archives[0], archives[1]) {
		t.Fatalf("same commit, different images: %v", digests)
	}
	// And the archive imports.
	dst := newRepo(t, repo.ModeBare)
	if _, err := Import(ctx, dst, "oci-archive:"+filepath.Join(dir, "a.tar"), ImportOptions{Ref: "x"}); err != nil {
		t.Fatal(err)
	}
}

func TestImportFetchesOnlyChangedLayers(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "root")
	osTree(t, root, "package b v1")
	src := newRepo(t, repo.ModeBare)
	c1 := commitTree(t, src, root, "1.0")
	if err := os.WriteFile(filepath.Join(root, "usr/lib/pkgb/b1"), []byte("package b v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	c2 := commitTree(t, src, root, "2.0")
	dir := t.TempDir()
	if _, err := Encapsulate(ctx, src, c1.String(), "oci:"+dir+"/v1", EncapsulateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Encapsulate(ctx, src, c2.String(), "oci:"+dir+"/v2", EncapsulateOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	r1, err := Import(ctx, dst, "oci:"+dir+"/v1", ImportOptions{Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r1.Held) != 0 {
		t.Fatalf("first import held %v", r1.Held)
	}
	r2, err := Import(ctx, dst, "oci:"+dir+"/v2", ImportOptions{Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Commit != c2 {
		t.Fatalf("v2 imported as %s, want %s", r2.Commit, c2)
	}
	// pkgb's layer and the commit layer changed; everything else is held.
	if len(r2.Fetched) != 2 || len(r2.Held) != len(r1.Fetched)-2 {
		t.Fatalf("v2 fetched %d layers %v, held %d (v1 had %d)", len(r2.Fetched), r2.Fetched, len(r2.Held), len(r1.Fetched))
	}
	ostreeFsck(t, dst)
}

// oci:PATH replaces an earlier layout, never an unrelated directory.
func TestEncapsulateRefusesToReplaceOtherDirectories(t *testing.T) {
	src, _ := sourceRepo(t, "package b v1")
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "precious")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "keep"), []byte("mine"), 0o644)
	_, err := Encapsulate(ctx, src, "os/test", "oci:"+dir, EncapsulateOptions{})
	if err == nil || !strings.Contains(err.Error(), "not an OCI image layout") {
		t.Fatalf("encapsulate over a directory: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "mine" {
		t.Fatalf("the directory was touched: %q %v", b, err)
	}
	layout := filepath.Join(t.TempDir(), "img")
	for i := 0; i < 2; i++ {
		if _, err := Encapsulate(ctx, src, "os/test", "oci:"+layout, EncapsulateOptions{}); err != nil {
			t.Fatalf("encapsulate #%d over an earlier image: %v", i+1, err)
		}
	}
}

func TestParseSourceRef(t *testing.T) {
	for in, want := range map[string]SourceRef{
		"oci:/a/b":    {Image: ImageRef{Transport: TransportOCI, Path: "/a/b"}},
		"oci:/a/b:v1": {Image: ImageRef{Transport: TransportOCI, Path: "/a/b", Tag: "v1"}},
		"ostree-unverified-image:oci-archive:/x.tar":      {Image: ImageRef{Transport: TransportOCIArchive, Path: "/x.tar"}},
		"ostree-unverified-registry:quay.io/os/a:1":       {Image: ImageRef{Transport: TransportRegistry, Name: "quay.io/os/a:1"}},
		"ostree-remote-image:fedora:docker://h:5000/os:1": {Remote: "fedora", Image: ImageRef{Transport: TransportRegistry, Name: "h:5000/os:1"}},
		"ostree-remote-registry:fedora:h.example/os:2":    {Remote: "fedora", Image: ImageRef{Transport: TransportRegistry, Name: "h.example/os:2"}},
	} {
		got, err := ParseSourceRef(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "foo:bar", "docker://", "ostree-remote-image::oci:/x", "ostree-image-signed:docker://h/os:1", "oci:"} {
		if _, err := ParseSourceRef(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
