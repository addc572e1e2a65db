package sysroot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/internal/fsutil"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
)

// stagedPath is the record of a staged deployment, in libostree's format:
// an a{sv} with "target" and "merge-deployment" (each an a{sv} of name,
// osname and bootcsum) and optional "kargs" (as).
func (s *Sysroot) stagedPath() string {
	return filepath.Join(s.opts.RunDir, "ostree/staged-deployment")
}

// stagedLockedPath blocks finalization while it exists.
func (s *Sysroot) stagedLockedPath() string {
	return filepath.Join(s.opts.RunDir, "ostree/staged-deployment-locked")
}

type stagedRecord struct {
	target, merge *Deployment
	kargs         bootloader.Kargs
	hasKargs      bool
}

func deploymentDict(d *Deployment) gvariant.Variant {
	m := object.Metadata{}
	m.Set("name", gvariant.NewVariant("s", d.Name()))
	m.Set("osname", gvariant.NewVariant("s", d.OS))
	m.Set("bootcsum", gvariant.NewVariant("s", d.BootCsum))
	return gvariant.Variant{Type: gvariant.MustParseType("a{sv}"), Value: object.ValueOfMetadata(m)}
}

func (s *Sysroot) writeStaged(rec stagedRecord) error {
	m := object.Metadata{}
	m.Set("target", deploymentDict(rec.target))
	if rec.merge != nil {
		m.Set("merge-deployment", deploymentDict(rec.merge))
	}
	if rec.hasKargs {
		m.Set("kargs", object.StringList(rec.kargs))
	}
	b, err := object.MarshalMetadata(m)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.stagedPath()), 0o755); err != nil {
		return fmt.Errorf("write staged deployment record: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.stagedPath(), b, 0o644, !s.opts.NoSync); err != nil {
		return fmt.Errorf("write staged deployment record: %w", err)
	}
	return nil
}

// readStaged parses the record; a missing record is (nil, nil).
func (s *Sysroot) readStaged() (*stagedRecord, error) {
	b, err := os.ReadFile(s.stagedPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("staged deployment record: %w", err)
	}
	m, err := object.UnmarshalMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("staged deployment record %s: %w", s.stagedPath(), err)
	}
	rec := &stagedRecord{}
	parse := func(key string) (*Deployment, error) {
		v, ok := m.Get(key)
		if !ok {
			return nil, nil
		}
		if v.Type.String() != "a{sv}" {
			return nil, fmt.Errorf("staged deployment record: %s has type %s", key, v.Type)
		}
		dm := object.MetadataFromValue(v.Value)
		name, osname := dm.String("name"), dm.String("osname")
		sm := nameRe.FindStringSubmatch(name)
		if sm == nil || ValidateOSName(osname) != nil {
			return nil, fmt.Errorf("staged deployment record: bad %s (name %q, osname %q)", key, name, osname)
		}
		d, err := s.loadDeployment(osname, sm[1], sm[2])
		if err != nil {
			return nil, err
		}
		d.BootCsum = dm.String("bootcsum")
		return d, nil
	}
	if rec.target, err = parse("target"); err != nil {
		return nil, err
	}
	if rec.target == nil {
		return nil, fmt.Errorf("staged deployment record: no target")
	}
	if rec.merge, err = parse("merge-deployment"); err != nil {
		// The merge deployment may have been removed meanwhile.
		rec.merge = nil
	}
	if v, ok := m.Get("kargs"); ok {
		if arr, ok := v.Value.([]gvariant.Value); ok {
			rec.hasKargs = true
			for _, a := range arr {
				if s, ok := a.(string); ok {
					rec.kargs = append(rec.kargs, s)
				}
			}
		}
	}
	return rec, nil
}

// loadStaged fills s.Staged from the record. A record that names a
// deployment which is gone or already in the boot configuration (a crash
// between the flip and the record's removal) is ignored here and removed
// by the next write.
func (s *Sysroot) loadStaged() error {
	rec, err := s.readStaged()
	if err != nil {
		s.logf("warning: ignoring staged deployment: %v", err)
		return nil
	}
	if rec == nil {
		return nil
	}
	for _, d := range s.Deployments {
		if d.same(rec.target) {
			return nil
		}
	}
	rec.target.Staged = true
	rec.target.Kargs = rec.kargs
	s.Staged = rec.target
	return nil
}

func (s *Sysroot) removeStaged() error {
	err := os.Remove(s.stagedPath())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove staged deployment record: %w", err)
	}
	s.Staged = nil
	return nil
}
