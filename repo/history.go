package repo

import (
	"fmt"
	"strings"

	"github.com/osupdate/os-update/repo/object"
)

// FindInHistory walks from head through its parents to the first commit
// whose checksum starts with rev (at least 8 hex digits) or whose
// "version" is rev. The walk ends quietly where the history is missing
// (shallow pulls).
func (r *Repo) FindInHistory(head object.Checksum, rev string) (object.Checksum, error) {
	for c := head; ; {
		if len(rev) >= 8 && strings.HasPrefix(c.String(), rev) {
			return c, nil
		}
		cm, err := r.LoadCommit(c)
		if err != nil {
			break
		}
		if cm.Version() == rev {
			return c, nil
		}
		if !cm.HasParent() {
			break
		}
		c = cm.Parent
	}
	return object.Checksum{}, fmt.Errorf("no commit with version or checksum %q in the history of %s", rev, head)
}
