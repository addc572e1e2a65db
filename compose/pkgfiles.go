package compose

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/osupdate/os-update/compose/rpmdb"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/object"
)

// PackageFiles maps every file path the commit's rpm database lists to the
// name of the package owning it, with /etc paths moved to /usr/etc as in
// the commit. A commit without a database gives nil: it was not composed
// from packages. Container encapsulation groups layers by it.
func PackageFiles(ctx context.Context, r *repo.Repo, commit object.Checksum, tool *rpmdb.Tool) (map[string]string, error) {
	v, err := r.ViewCommit(commit)
	if err != nil {
		return nil, err
	}
	if _, err := v.Lookup(rpmdb.DBPath + "/rpmdb.sqlite"); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Join(r.Path(), "tmp"), "rpmdb-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dest := filepath.Join(tmp, rpmdb.DBPath)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return nil, err
	}
	if err := r.Checkout(ctx, commit, dest, repo.CheckoutOptions{Subpath: rpmdb.DBPath, Copy: true}); err != nil {
		return nil, fmt.Errorf("package files of %s: %w", commit, err)
	}
	if tool == nil {
		tool = &rpmdb.Tool{}
	}
	pkgs, err := tool.Query(ctx, tmp)
	if err != nil {
		return nil, fmt.Errorf("package files of %s: %w", commit, err)
	}
	out := map[string]string{}
	for _, p := range pkgs {
		for _, f := range p.Files {
			if f == "/etc" || strings.HasPrefix(f, "/etc/") {
				f = "/usr" + f
			}
			if _, ok := out[f]; !ok {
				out[f] = p.Name
			}
		}
	}
	return out, nil
}
