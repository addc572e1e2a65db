package repo

import (
	"errors"
	"fmt"

	"github.com/osupdate/os-update/repo/object"
)

// Reachable is a set of object names.
type Reachable map[object.Name]struct{}

// Add inserts n and reports whether it was new.
func (s Reachable) Add(n object.Name) bool {
	if _, ok := s[n]; ok {
		return false
	}
	s[n] = struct{}{}
	return true
}

// Has reports membership.
func (s Reachable) Has(n object.Name) bool { _, ok := s[n]; return ok }

// TraverseCommit adds to set every object reachable from commit, following
// parents up to depth (0: only this commit, -1: all). Missing parents end
// the walk quietly (history is often shallow); a missing object of a
// commit that is not marked partial is an error.
func (r *Repo) TraverseCommit(commit object.Checksum, depth int, set Reachable) error {
	for c := commit; ; depth-- {
		cn := object.Name{Checksum: c, Type: object.TypeCommit}
		if !set.Add(cn) {
			return nil // this commit and its ancestry were walked already
		}
		cm, err := r.LoadCommit(c)
		if err != nil {
			if c != commit && errors.Is(err, ErrObjectNotFound) {
				delete(set, cn)
				return nil
			}
			return err
		}
		if ok, _ := r.HasObject(c, object.TypeCommitMeta); ok {
			set.Add(object.Name{Checksum: c, Type: object.TypeCommitMeta})
		}
		if err := r.ViewTree(Tree{cm.RootTree, cm.RootMeta}).AddObjects("/", set); err != nil {
			if r.IsPartial(c) && errors.Is(err, ErrObjectNotFound) {
				// A partial commit is allowed to miss objects.
			} else {
				return fmt.Errorf("commit %s: %w", c, err)
			}
		}
		if !cm.HasParent() || depth == 0 {
			return nil
		}
		c = cm.Parent
	}
}
