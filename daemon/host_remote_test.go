package daemon

import (
	"path/filepath"
	"testing"

	"github.com/osupdate/os-update/repo"
)

// TestUnknownRemoteNamedOnce: the error of an unknown remote names it once
// (it used to read `remote "x": remote "x": no such remote`).
func TestUnknownRemoteNamedOnce(t *testing.T) {
	dir := t.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	b := NewHostBackend(HostConfig{Sysroot: dir})
	_, err = b.source(r, "x")
	if err == nil || err.Error() != `remote "x": no such remote` {
		t.Errorf("got %v", err)
	}
}
