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
		if err := r.traverseTree(Tree{cm.RootTree, cm.RootMeta}, set); err != nil {
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

func (r *Repo) traverseTree(t Tree, set Reachable) error {
	set.Add(object.Name{Checksum: t.DirMeta, Type: object.TypeDirMeta})
	if !set.Add(object.Name{Checksum: t.DirTree, Type: object.TypeDirTree}) {
		return nil
	}
	dt, err := r.LoadDirTree(t.DirTree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		set.Add(object.Name{Checksum: f.Checksum, Type: object.TypeFile})
	}
	for _, d := range dt.Dirs {
		if err := r.traverseTree(Tree{d.Tree, d.Meta}, set); err != nil {
			return err
		}
	}
	return nil
}
