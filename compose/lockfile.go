package compose

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/internal/fsutil"
)

// lockfile is rpm-ostree's lockfile format:
// {"packages": {"NAME": {"evra": "[E:]V-R.ARCH", "digest": "sha256:HEX"}}}.
type lockfile struct {
	Packages map[string]lockEntry `json:"packages"`
}

type lockEntry struct {
	EVRA   string `json:"evra"`
	Digest string `json:"digest,omitempty"`
}

func readLockfile(path string) (map[string]string, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("lockfile: %w", err)
	}
	var lf lockfile
	if err := json.Unmarshal(b, &lf); err != nil {
		return nil, nil, fmt.Errorf("lockfile %s: %w", path, err)
	}
	evra := map[string]string{}
	digests := map[string]string{}
	for name, e := range lf.Packages {
		if e.EVRA == "" {
			return nil, nil, fmt.Errorf("lockfile %s: package %s has no evra", path, name)
		}
		evra[name] = e.EVRA
		digests[name] = e.Digest
	}
	return evra, digests, nil
}

func writeLockfile(path string, pkgs []*rpmmd.Package) error {
	lf := lockfile{Packages: map[string]lockEntry{}}
	for _, p := range pkgs {
		lf.Packages[p.Name] = lockEntry{EVRA: p.EVR.String() + "." + p.Arch, Digest: p.Checksum.String()}
	}
	b, err := json.MarshalIndent(lf, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, append(b, '\n'), 0o644, true); err != nil {
		return fmt.Errorf("write lockfile: %w", err)
	}
	return nil
}
