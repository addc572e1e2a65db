package sysroot

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/repo/keyfile"
)

// mutate runs fn under the lock with freshly loaded state, after removing
// the leftovers of interrupted operations.
func (s *Sysroot) mutate(fn func() error) error {
	unlock, err := s.Lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.Load(); err != nil {
		return err
	}
	if err := s.checkReadable(); err != nil {
		return err
	}
	return fn()
}

// Rollback makes Status().RollbackTarget() the default: the rollback
// deployment (the first of the current stateroot after the booted one,
// or offline after the default), else, when an update is pending, the
// booted one. A staged deployment is discarded.
func (s *Sysroot) Rollback(ctx context.Context) (*Deployment, error) {
	return s.makeDefault(ctx, func(st *Status) (*Deployment, error) { return st.RollbackTarget() })
}

// MakeDefault makes the named boot-configured deployment (see
// Status.Find) the default, the others keeping their order after it, as
// Rollback does for the rollback target. A staged deployment is
// discarded. The health check uses it after the boot loader fell back to
// an older deployment, whichever its position.
func (s *Sysroot) MakeDefault(ctx context.Context, name string) (*Deployment, error) {
	return s.makeDefault(ctx, func(st *Status) (*Deployment, error) {
		d, err := st.Find(name)
		if err != nil {
			return nil, fmt.Errorf("make default: %w", err)
		}
		if d.Staged {
			return nil, fmt.Errorf("make default: %s is staged (finalize makes it the default)", name)
		}
		return d.Deployment, nil
	})
}

// makeDefault writes the boot configuration with the deployment choose
// picks first, in one swap.
func (s *Sysroot) makeDefault(ctx context.Context, choose func(*Status) (*Deployment, error)) (*Deployment, error) {
	var target *Deployment
	err := s.mutate(func() error {
		t, err := choose(s.Status())
		if err != nil {
			return err
		}
		target = t
		list := []*Deployment{target}
		for _, d := range s.Deployments {
			if d != target {
				list = append(list, d)
			}
		}
		if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
			return err
		}
		if s.Staged != nil {
			s.logf("Discarding staged deployment %s", s.Staged.Name())
			if err := s.removeStaged(); err != nil {
				return err
			}
		}
		if err := s.writeDeployments(list); err != nil {
			return err
		}
		_, err = s.cleanup(ctx, false)
		return err
	})
	return target, err
}

// Undeploy removes the named deployment (see Status.Find) from the boot
// configuration, or discards it if it is the staged one, then deletes it.
// The booted deployment and the only boot-configured one are refused.
// It prunes the objects only that deployment used; the result says what
// was removed.
func (s *Sysroot) Undeploy(ctx context.Context, name string) (*CleanupResult, error) {
	var res *CleanupResult
	err := s.mutate(func() error {
		d, err := s.Status().Find(name)
		if err != nil {
			return fmt.Errorf("undeploy: %w", err)
		}
		switch {
		case d.Booted:
			return fmt.Errorf("undeploy: %s is the booted deployment", name)
		case !d.Staged && len(s.Deployments) == 1:
			return fmt.Errorf("undeploy: %s is the only deployment", name)
		}
		if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
			return err
		}
		switch {
		case d.Staged:
			s.logf("Discarding staged deployment %s", d.Name())
			if err := s.removeStaged(); err != nil {
				return err
			}
		default:
			var list []*Deployment
			for _, o := range s.Deployments {
				if o != d.Deployment {
					list = append(list, o)
				}
			}
			if err := s.writeDeployments(list); err != nil {
				return err
			}
		}
		res, err = s.cleanup(ctx, true)
		return err
	})
	return res, err
}

// SetPinned pins or unpins the deployment at index; a pinned deployment
// is kept when new ones are deployed.
func (s *Sysroot) SetPinned(index int, pinned bool) error {
	return s.mutate(func() error {
		if index < 0 || index >= len(s.Deployments) {
			return fmt.Errorf("pin: no deployment %d (there are %d)", index, len(s.Deployments))
		}
		d := s.Deployments[index]
		if d.Origin == nil {
			d.Origin = keyfile.New()
		}
		if pinned {
			d.Origin.SetBool("libostree-transient", "pinned", true)
		} else {
			d.Origin.Delete("libostree-transient", "pinned")
			if len(d.Origin.Keys("libostree-transient")) == 0 {
				d.Origin.DeleteGroup("libostree-transient")
			}
		}
		return s.writeOrigin(d)
	})
}

// KargsEdit changes the kernel arguments of a deployment: Delete first,
// then Replace (rpm-ostree's semantics, see bootloader.Kargs.ReplaceValue:
// it never appends), then Append.
type KargsEdit struct {
	Append, Delete, Replace []string
}

// SetKargs applies an edit to the kernel arguments of the deployment at
// index and writes a new boot configuration. It returns the new list.
func (s *Sysroot) SetKargs(ctx context.Context, index int, edit KargsEdit) (bootloader.Kargs, error) {
	var out bootloader.Kargs
	// Checked where they enter, before the lock is even taken: an
	// argument with a newline would add lines to the boot entry.
	for _, args := range [][]string{edit.Append, edit.Replace, edit.Delete} {
		if err := bootloader.ValidateArgs(args); err != nil {
			return nil, fmt.Errorf("kargs: %w", err)
		}
	}
	err := s.mutate(func() error {
		if index < 0 || index >= len(s.Deployments) {
			return fmt.Errorf("kargs: no deployment %d (there are %d)", index, len(s.Deployments))
		}
		d := s.Deployments[index]
		k := append(bootloader.Kargs{}, d.Kargs...)
		var err error
		for _, a := range edit.Delete {
			if k, err = k.Delete(a); err != nil {
				return fmt.Errorf("kargs: %w", err)
			}
		}
		for _, a := range edit.Replace {
			if k, err = k.ReplaceValue(a); err != nil {
				return fmt.Errorf("kargs: %w", err)
			}
		}
		for _, a := range edit.Append {
			k = k.Append(a)
		}
		for _, a := range k {
			if key, _, _ := cutKey(a); key == "ostree" {
				return fmt.Errorf("kargs: ostree= is managed by the deployment and cannot be set")
			}
		}
		out = k
		if k.Equal(d.Kargs) {
			return nil
		}
		if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
			return err
		}
		list := append([]*Deployment{}, s.Deployments...)
		nd := *d
		nd.Kargs = k
		list[index] = &nd
		if err := s.writeDeployments(list); err != nil {
			return err
		}
		_, err = s.cleanup(ctx, false)
		return err
	})
	return out, err
}

func cutKey(a string) (string, string, bool) {
	for i := 0; i < len(a); i++ {
		if a[i] == '=' {
			return a[:i], a[i+1:], true
		}
	}
	return a, "", false
}

// ErrNothingStaged is returned by Finalize when there is no staged
// deployment.
var ErrNothingStaged = errors.New("no staged deployment")

// Finalize completes a staged deployment: the /etc merge from the merge
// deployment as it is now, then the boot configuration swap. It is what
// runs at shutdown. While the record's -locked file exists it does nothing.
func (s *Sysroot) Finalize(ctx context.Context) (*DeployResult, error) {
	var res *DeployResult
	err := s.mutate(func() error {
		if _, err := os.Stat(s.stagedLockedPath()); err == nil {
			s.logf("Staged deployment is locked (%s); not finalizing", s.stagedLockedPath())
			return nil
		}
		rec, err := s.readStaged()
		if err != nil {
			return err
		}
		if s.Staged == nil || rec == nil {
			// Also the case after a crash between the swap and the
			// removal of the record: the cleanup drops the record.
			if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
				return err
			}
			return ErrNothingStaged
		}
		d := s.Staged
		merge := s.MergeDeployment(d.OS)
		if rec.merge != nil {
			for _, o := range s.Deployments {
				if o.same(rec.merge) {
					merge = o
				}
			}
		}
		var diff *etcDiff
		if merge != nil {
			if diff, err = diffEtc(s.abs(merge.RelDir())); err != nil {
				return fmt.Errorf("finalize: merge deployment %s: %w", merge.Name(), err)
			}
		}
		if err := s.cleanLeftovers(&CleanupResult{}); err != nil {
			return err
		}
		res = &DeployResult{Deployment: d}
		if diff != nil {
			dir := s.abs(d.RelDir())
			setImmutable(dir, false)
			// Start again from the defaults, so that a finalize
			// interrupted half-way can simply be run again.
			if err := os.RemoveAll(dir + "/etc"); err != nil {
				return fmt.Errorf("finalize: %w", err)
			}
			if err := copyTree(dir+"/usr/etc", dir+"/etc"); err != nil {
				return fmt.Errorf("finalize: create /etc: %w", err)
			}
			rep, err := applyEtcMerge(diff, s.abs(merge.RelDir()), dir)
			if err != nil {
				return fmt.Errorf("finalize: /etc merge: %w", err)
			}
			res.Etc = rep
			s.logEtc(rep)
			if !s.opts.MutableDeployments {
				if err := setImmutable(dir, true); err != nil {
					return err
				}
			}
		}
		s.checkpoint("finalize-etc-merged")
		list := s.newList(d, merge, false)
		if err := s.writeDeployments(list); err != nil {
			return err
		}
		if err := s.removeStaged(); err != nil {
			return err
		}
		_, err = s.cleanup(ctx, true)
		return err
	})
	return res, err
}
