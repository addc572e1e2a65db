package compose

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/rpmpack"
	"github.com/osupdate/os-update/compose/rpmdb"
	"github.com/osupdate/os-update/internal/testutil"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/container"
)

// Container layers follow the packages of the commit's rpm database.
func TestPackageFilesGroupContainerLayers(t *testing.T) {
	testutil.RequireTool(t, "rpm")
	testutil.RequireTool(t, "bwrap")
	ctx := context.Background()
	work := t.TempDir()
	tree := filepath.Join(work, "tree")
	pkgFiles := map[string][]string{
		"alpha": {"/usr/bin/alpha", "/usr/share/alpha/data", "/etc/alpha.conf"},
		"beta":  {"/usr/bin/beta", "/usr/share/beta/data"},
	}
	var rpms []string
	for name, files := range pkgFiles {
		p, err := rpmpack.NewRPM(rpmpack.RPMMetaData{Name: name, Version: "1", Release: "1", Arch: "noarch"})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			body := []byte(name + " " + f)
			p.AddFile(rpmpack.RPMFile{Name: f, Body: body, Mode: 0o100644, Owner: "root", Group: "root"})
			dst := filepath.Join(tree, f)
			if strings.HasPrefix(f, "/etc/") {
				dst = filepath.Join(tree, "usr", f)
			}
			os.MkdirAll(filepath.Dir(dst), 0o755)
			if err := os.WriteFile(dst, body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		rp := filepath.Join(work, name+".rpm")
		out, _ := os.Create(rp)
		if err := p.Write(out); err != nil {
			t.Fatal(err)
		}
		out.Close()
		rpms = append(rpms, rp)
	}
	sort.Strings(rpms)
	os.MkdirAll(filepath.Join(tree, "usr/lib/modules/6.1.0"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/lib/modules/6.1.0/vmlinuz"), []byte("K"), 0o644)
	os.WriteFile(filepath.Join(tree, "usr/bin/unowned"), []byte("no package"), 0o755)
	if err := (&rpmdb.Tool{}).Install(ctx, tree, rpms); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Init(filepath.Join(work, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.CommitDir(ctx, tree, repo.CommitOptions{Branch: "os"})
	if err != nil {
		t.Fatal(err)
	}
	owners, err := PackageFiles(ctx, r, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if owners["/usr/bin/alpha"] != "alpha" || owners["/usr/etc/alpha.conf"] != "alpha" || owners["/usr/share/beta/data"] != "beta" || owners["/usr/bin/unowned"] != "" {
		t.Fatalf("owners: %v", owners)
	}

	img, cleanup, err := container.BuildImage(ctx, r, c, container.EncapsulateOptions{
		TmpDir: work, PackageOf: func(p string) string { return owners[p] },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	mf, _ := img.Manifest()
	ls, _ := img.Layers()
	got := map[string][]string{}
	for i, d := range mf.Layers {
		comp := d.Annotations[container.AnnotationComponents]
		rc, err := ls[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag != tar.TypeDir && !strings.HasPrefix(h.Name, "sysroot/") {
				got[comp] = append(got[comp], "/"+h.Name)
			}
		}
		rc.Close()
	}
	for name, files := range pkgFiles {
		var want []string
		for _, f := range files {
			want = append(want, f)
		}
		sort.Strings(want)
		have := got["rpm/"+name]
		sort.Strings(have)
		if strings.Join(have, " ") != strings.Join(want, " ") {
			t.Errorf("layer rpm/%s holds %v, want the package's files %v (layers: %v)", name, have, want, got)
		}
	}
}
