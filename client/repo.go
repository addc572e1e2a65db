package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/internal/ostreefmt"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/commitmeta"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

func repoCommands() []command {
	cmds := []command{
		{use: "init", short: "create a repository", run: repoInit, long: `Create an empty repository at --repo: bare (the default; what a host's
/ostree/repo is), archive (compressed objects, what servers publish; also
called archive-z2) or bare-user-only (no ownership or xattrs, for
unprivileged users).`},
		{use: "commit [PATH]", short: "commit a directory tree", run: repoCommit, long: `Commit the directory PATH (or --tree=dir=PATH) as a new commit of --branch,
with the branch's current commit as parent (unless --orphan or --parent).
Prints the new commit's checksum. --bootable checks that the tree holds
exactly one kernel and records it in the commit metadata.`},
		{use: "checkout REV DEST", short: "check a commit out into a directory", run: repoCheckout, long: `Check out the tree of REV (a ref, a checksum or a prefix of at least 4 hex
characters, with ^ for parents) into the new directory DEST. From a bare
repository files are hardlinked unless --force-copy; --union writes into an
existing directory.`},
		{use: "fsck", short: "verify every object and reference", run: repoFsck, long: `Verify every object of the repository against its checksum, and that every
ref points at a commit whose tree is complete. Exits 1 when something is
wrong; --delete removes corrupt objects.`},
		{use: "prune", short: "delete unreachable objects", run: repoPrune, long: `Delete objects no ref (and no deployment's commit) reaches. --depth and
--keep-younger-than also cut the history behind each ref; --no-prune only
reports what would go.`},
		{use: "log REV", short: "show a commit and its ancestors", run: repoLog, long: `Print REV's commit (checksum, date, version, subject, body) and those of its
parents, newest first, as far as the repository has them.`},
		{use: "show REV", short: "show a commit", run: repoShow, long: `Print REV's commit: checksum, parent, date, version, subject and body, or
one metadata value (--print-metadata-key, --print-detached-metadata-key).`},
		{use: "ls REV [PATH...]", short: "list files in a commit", run: repoLs, long: `List the files of REV's tree below PATH (default /): type, mode, owner,
size and name, and with -C their checksums, -X their xattrs; -R descends.`},
		{use: "cat REV PATH...", short: "print a file of a commit", run: repoCat, long: `Write the contents of the files PATH of REV's tree to standard output.`},
		{use: "refs [PREFIX]", short: "list, create or delete refs", run: repoRefs, long: `List the refs (and remote refs, as REMOTE:REF) starting with PREFIX.
--delete deletes the refs named; --create NEW REV makes ref NEW point at REV.`},
		{use: "rev-parse REV", short: "print the checksum a revision names", run: repoRevParse, long: `Print the full checksum REV names: a ref, REMOTE:REF, a checksum or a
prefix of at least 4 hex characters, each optionally followed by ^ (the
parent) any number of times.`},
	}
	// Each feature area registers its subcommands in its own file.
	cmds = append(cmds, repoSyncCommands()...)
	cmds = append(cmds, repoDeltaCommands()...)
	cmds = append(cmds, repoContainerCommands()...)
	return cmds
}

// errNoRepo is the usage error of a repository command without one.
var errNoRepo = usagef("--repo is required (or set OSTREE_REPO)")

// repoPathFlag adds --repo, by default $OSTREE_REPO as with ostree.
func repoPathFlag(f *flagSet, usage string) *string {
	return f.String("repo", os.Getenv("OSTREE_REPO"), usage+" (default: $OSTREE_REPO; required)")
}

// repoFlag adds --repo and returns a function that opens it.
func repoFlag(f *flagSet) func() (*repo.Repo, error) {
	p := repoPathFlag(f, "path to the repository")
	return func() (*repo.Repo, error) {
		if *p == "" {
			return nil, errNoRepo
		}
		return repo.Open(*p)
	}
}

func repoInit(f *flagSet) runFunc {
	p := repoPathFlag(f, "path of the repository to create")
	mode := f.String("mode", "bare", "repository mode: bare, archive (archive-z2), bare-user-only")
	return func(ctx context.Context, e *env, args []string) error {
		if *p == "" {
			return errNoRepo
		}
		m, err := repo.ParseMode(*mode)
		if err != nil {
			return usagef("%v", err)
		}
		if m == repo.ModeBareUser {
			return fmt.Errorf("mode bare-user is not supported: use bare-user-only or bare")
		}
		r, err := repo.Init(*p, m)
		if err != nil {
			return err
		}
		return r.Close()
	}
}

// parseTime accepts RFC 3339, "YYYY-MM-DD HH:MM:SS" (UTC), and Unix
// seconds with an optional leading '@'.
func parseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(strings.TrimPrefix(s, "@"), 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid time %q: want RFC 3339 or Unix seconds", s)
}

func repoCommit(f *flagSet) runFunc {
	open := repoFlag(f)
	var branch, subject, body, tree, parent, timestamp string
	f.StringVarP(&branch, "branch", "b", "", "branch (ref) to commit to")
	f.StringVarP(&subject, "subject", "s", "", "one-line subject")
	f.StringVarP(&body, "body", "m", "", "full description")
	f.StringVar(&tree, "tree", "", "dir=PATH: the directory to commit")
	f.StringVar(&parent, "parent", "", "parent commit (default: the branch's current commit)")
	f.StringVar(&timestamp, "timestamp", "", "commit time (RFC 3339 or Unix seconds); default $SOURCE_DATE_EPOCH or now")
	orphan := f.Bool("orphan", false, "create a commit without a parent")
	noBindings := f.Bool("no-bindings", false, "do not record the branch in ostree.ref-binding")
	bootable := f.Bool("bootable", false, "add ostree.linux and ostree.bootable (the tree must have exactly one kernel)")
	var metaStr, metaAny stringList
	f.Var(&metaStr, "add-metadata-string", "KEY=VALUE: add a string to the commit metadata (repeatable)")
	f.Var(&metaAny, "add-metadata", "KEY=VALUE: add a GVariant text value (string, integer, boolean) (repeatable)")
	ownerUID := f.Int("owner-uid", -1, "set every file's uid")
	ownerGID := f.Int("owner-gid", -1, "set every file's gid")
	noXattrs := f.Bool("no-xattrs", false, "do not record extended attributes")
	canonical := f.Bool("canonical-permissions", false, "uid/gid 0 and permissions masked to 0755")
	fsync := f.Bool("fsync", true, "sync data before making objects visible")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		dir := strings.TrimPrefix(tree, "dir=")
		if tree != "" && !strings.HasPrefix(tree, "dir=") {
			return usagef("--tree supports only dir=PATH")
		}
		switch {
		case dir == "" && len(pos) == 1:
			dir = pos[0]
		case dir == "" || len(pos) > 0:
			return usagef("give exactly one directory to commit")
		}
		if branch == "" {
			return usagef("a branch is required (-b BRANCH)")
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		r.SetFsync(*fsync)
		opts := repo.CommitOptions{Branch: branch, Subject: subject, Body: body, Orphan: *orphan, NoBindings: *noBindings}
		opts.NoXattrs, opts.CanonicalPermissions = *noXattrs, *canonical
		if *ownerUID >= 0 {
			u := uint32(*ownerUID)
			opts.OwnerUID = &u
		}
		if *ownerGID >= 0 {
			g := uint32(*ownerGID)
			opts.OwnerGID = &g
		}
		if parent != "" {
			if opts.Parent, err = r.ResolveRev(parent); err != nil {
				return err
			}
		}
		if timestamp == "" {
			timestamp = os.Getenv("SOURCE_DATE_EPOCH")
		}
		if timestamp != "" {
			if opts.Timestamp, err = parseTime(timestamp); err != nil {
				return usagef("--timestamp: %v", err)
			}
		}
		for _, kv := range metaStr {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--add-metadata-string %q: want KEY=VALUE", kv)
			}
			opts.Metadata.Set(k, gvariant.NewVariant("s", v))
		}
		for _, kv := range metaAny {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return usagef("--add-metadata %q: want KEY=VALUE", kv)
			}
			val, err := parseVariantText(v)
			if err != nil {
				return usagef("--add-metadata %s: %v", k, err)
			}
			opts.Metadata.Set(k, val)
		}
		if *bootable {
			kver, err := sysroot.KernelVersion(dir)
			if err != nil {
				return fmt.Errorf("--bootable: %w", err)
			}
			commitmeta.SetBootable(&opts.Metadata, kver)
		}
		c, err := r.CommitDir(ctx, dir, opts)
		if err != nil {
			return err
		}
		e.printf("%s\n", c)
		return nil
	}
}

// parseVariantText parses the GVariant text forms people put on command
// lines (see gvariant.ParseText): 'string' or "string", true/false,
// integers (int32, or with a type prefix such as uint64 42), and
// ['a', 'b'] string lists.
func parseVariantText(s string) (gvariant.Variant, error) {
	v, err := gvariant.ParseText(s)
	if errors.Is(err, gvariant.ErrUnknownText) {
		return gvariant.Variant{}, fmt.Errorf("cannot parse %q (quote strings: 'text')", strings.TrimSpace(s))
	}
	return v, err
}

func repoCheckout(f *flagSet) runFunc {
	open := repoFlag(f)
	var opts repo.CheckoutOptions
	f.BoolVar(&opts.Union, "union", false, "overwrite existing files and merge into existing directories")
	f.StringVar(&opts.Subpath, "subpath", "", "check out only this path of the tree")
	f.BoolVarP(&opts.UserMode, "user-mode", "U", false, "user mode: do not change ownership or set xattrs")
	f.BoolVar(&opts.Copy, "force-copy", false, "copy files instead of hardlinking them from a bare repository")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 2 {
			return usagef("want REV DEST")
		}
		r, c, err := openRev(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		return r.Checkout(ctx, c, pos[1], opts)
	}
}

func repoFsck(f *flagSet) runFunc {
	open := repoFlag(f)
	del := f.Bool("delete", false, "remove corrupt objects (their commits become partial)")
	quiet := f.BoolP("quiet", "q", false, "print only problems")
	return func(ctx context.Context, e *env, args []string) error {
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		if !*quiet {
			e.printf("Validating refs...\nEnumerating objects...\n")
		}
		rep, err := r.Fsck(ctx, repo.FsckOptions{Delete: *del})
		if err != nil {
			return err
		}
		if !*quiet {
			e.printf("Verified %d objects of %d commits\n", rep.Objects, rep.Commits)
		}
		for _, c := range rep.Partial {
			e.printf("Commit %s is partial (incomplete pull); skipped reachability check\n", c)
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(e.stderr, "fsck: %s\n", p)
		}
		deleted := map[object.Name]bool{}
		for _, n := range rep.Deleted {
			e.printf("Deleted corrupt object %s\n", n)
			deleted[n] = true
		}
		// With --delete, a corrupt object that is gone is dealt with: its
		// commit is now partial and a pull will fetch it again.
		remaining := 0
		for _, p := range rep.Problems {
			if !deleted[p.Object] {
				remaining++
			}
		}
		if remaining > 0 {
			return fmt.Errorf("fsck found %d problems", remaining)
		}
		if !*quiet {
			e.printf("object fsck of %d commits completed successfully - no errors found.\n", rep.Commits)
		}
		return nil
	}
}

func repoPrune(f *flagSet) runFunc {
	open := repoFlag(f)
	var opts repo.PruneOptions
	f.BoolVar(&opts.RefsOnly, "refs-only", false, "only refs are roots: commits no ref reaches are deleted")
	f.IntVar(&opts.Depth, "depth", -1, "parents to keep behind each ref (-1: all)")
	f.BoolVar(&opts.DryRun, "no-prune", false, "only report what would be deleted")
	keep := f.String("keep-younger-than", "", "delete commits older than DATE behind each ref head")
	var del stringList
	f.Var(&del, "delete-commit", "delete this commit (repeatable)")
	return func(ctx context.Context, e *env, args []string) error {
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		if *keep != "" {
			t, err := parseTime(*keep)
			if err != nil {
				if d, derr := time.ParseDuration(strings.TrimSuffix(*keep, " ago")); derr == nil {
					t = time.Now().Add(-d)
				} else {
					return usagef("--keep-younger-than: %v", err)
				}
			}
			opts.KeepYoungerThan = t
		}
		for _, d := range del {
			c, err := r.ResolveRev(d)
			if err != nil {
				return err
			}
			opts.DeleteCommits = append(opts.DeleteCommits, c)
		}
		res, err := r.Prune(ctx, opts)
		if err != nil {
			return err
		}
		verb := "deleted"
		if opts.DryRun {
			verb = "would delete"
		}
		e.printf("Total objects: %d\n", res.Total)
		if res.Pruned == 0 {
			e.printf("No unreachable objects\n")
		} else {
			e.printf("%s %d objects (%d commits), %d bytes freed\n", verb, res.Pruned, res.Commits, res.BytesFree)
		}
		return nil
	}
}

func printCommit(e *env, c object.Checksum, cm *object.Commit) {
	ostreefmt.WriteCommit(e.stdout, c, cm)
}

func repoLog(f *flagSet) runFunc {
	open := repoFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("want REV")
		}
		r, c, err := openRev(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		for {
			cm, err := r.LoadCommit(c)
			if err != nil {
				if c != (object.Checksum{}) && len(pos) > 0 {
					e.printf("<< History beyond this commit not fetched >>\n")
					return nil
				}
				return err
			}
			printCommit(e, c, cm)
			if !cm.HasParent() {
				return nil
			}
			if ok, _ := r.HasObject(cm.Parent, object.TypeCommit); !ok {
				e.printf("<< History beyond this commit not fetched >>\n")
				return nil
			}
			c = cm.Parent
		}
	}
}

func repoShow(f *flagSet) runFunc {
	open := repoFlag(f)
	key := f.String("print-metadata-key", "", "print one metadata value")
	dkey := f.String("print-detached-metadata-key", "", "print one detached metadata value")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("want REV")
		}
		r, c, cm, err := openCommit(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		switch {
		case *key != "":
			v, ok := cm.Metadata.Get(*key)
			if !ok {
				return fmt.Errorf("no metadata key %q in commit %s", *key, c)
			}
			e.printf("%s\n", gvariant.Format(v.Value, v.Type))
		case *dkey != "":
			m, err := r.ReadCommitMeta(c)
			if err != nil {
				return err
			}
			v, ok := m.Get(*dkey)
			if !ok {
				return fmt.Errorf("no detached metadata key %q for commit %s", *dkey, c)
			}
			e.printf("%s\n", gvariant.Format(v.Value, v.Type))
		default:
			printCommit(e, c, cm)
		}
		return nil
	}
}

// treeEntry is one path of a commit's tree with what ls prints of it.
type treeEntry struct {
	repo.TreeEntry
	header *object.FileHeader
	size   uint64
	dmeta  *object.DirMeta
}

// describe reads the metadata ls prints for an entry.
func describe(r *repo.Repo, v *repo.TreeView, e repo.TreeEntry) (*treeEntry, error) {
	ent := &treeEntry{TreeEntry: e}
	if e.IsDir {
		m, err := r.LoadDirMeta(e.Tree.DirMeta)
		ent.dmeta = m
		return ent, err
	}
	c, err := v.Open(e)
	if err != nil {
		return nil, err
	}
	c.Close()
	ent.header, ent.size = c.Header, c.Size
	return ent, nil
}

func (t *treeEntry) line(checksums, xattrs bool) string {
	var typ byte
	var mode, uid, gid uint32
	var xs []object.Xattr
	if t.IsDir {
		typ, mode, uid, gid, xs = 'd', t.dmeta.Mode, t.dmeta.UID, t.dmeta.GID, t.dmeta.Xattrs
	} else {
		typ, mode, uid, gid, xs = '-', t.header.Mode, t.header.UID, t.header.GID, t.header.Xattrs
		if t.header.IsSymlink() {
			typ = 'l'
		}
	}
	s := fmt.Sprintf("%c0%04o %d %d %6d ", typ, mode&0o7777, uid, gid, t.size)
	if checksums {
		if t.IsDir {
			s += t.Tree.DirTree.String() + " " + t.Tree.DirMeta.String() + " "
		} else {
			s += t.File.String() + " "
		}
	}
	if xattrs {
		s += formatXattrs(xs) + " "
	}
	s += t.Path
	if !t.IsDir && t.header.IsSymlink() {
		s += " -> " + t.header.SymlinkTarget
	}
	return s
}

func repoLs(f *flagSet) runFunc {
	open := repoFlag(f)
	recursive := f.BoolP("recursive", "R", false, "list recursively")
	checksums := f.BoolP("checksum", "C", false, "print checksums")
	xattrs := f.BoolP("xattrs", "X", false, "print extended attributes")
	nul := f.BoolP("nul-filenames-only", "0", false, "print only NUL-terminated paths")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) < 1 {
			return usagef("want REV [PATH...]")
		}
		r, _, cm, err := openCommit(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		paths := pos[1:]
		if len(paths) == 0 {
			paths = []string{"/"}
		}
		v := r.ViewTree(repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta})
		for _, p := range paths {
			top, err := v.Lookup(p)
			if err != nil {
				return err
			}
			err = v.Walk(p, func(te repo.TreeEntry) error {
				t, err := describe(r, v, te)
				if err != nil {
					return err
				}
				if *nul {
					fmt.Fprintf(e.stdout, "%s\x00", t.Path)
				} else {
					e.printf("%s\n", t.line(*checksums, *xattrs))
				}
				if te.IsDir && te.Path != top.Path && !*recursive {
					return fs.SkipDir
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func repoCat(f *flagSet) runFunc {
	open := repoFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) < 2 {
			return usagef("want REV PATH...")
		}
		r, _, cm, err := openCommit(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		v := r.ViewTree(repo.Tree{DirTree: cm.RootTree, DirMeta: cm.RootMeta})
		for _, p := range pos[1:] {
			t, err := v.Lookup(p)
			if err != nil {
				return err
			}
			content, err := v.Open(t)
			if err != nil {
				return err
			}
			_, err = io.Copy(e.stdout, content)
			content.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func repoRefs(f *flagSet) runFunc {
	open := repoFlag(f)
	del := f.Bool("delete", false, "delete the refs given as arguments")
	create := f.String("create", "", "create this ref pointing at the REV argument")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		switch {
		case *create != "":
			if len(pos) != 1 {
				return usagef("--create NEW needs one REV argument")
			}
			// Held until the ref is written, so a concurrent prune cannot
			// delete the commit in between.
			unlock, err := r.LockShared()
			if err != nil {
				return err
			}
			defer unlock()
			c, err := r.ResolveRev(pos[0])
			if err != nil {
				return err
			}
			if ok, _ := r.HasObject(c, object.TypeCommit); !ok {
				return fmt.Errorf("commit %s not found", c)
			}
			if _, err := r.ReadRef("", *create); err == nil {
				return fmt.Errorf("ref %s already exists", *create)
			}
			return r.SetRef("", *create, c)
		case *del:
			if len(pos) == 0 {
				return usagef("--delete needs at least one ref")
			}
			for _, p := range pos {
				remote, ref, err := repo.ParseRefspec(p)
				if err != nil {
					return err
				}
				if _, err := r.ReadRef(remote, ref); err != nil {
					return err
				}
				if err := r.SetRef(remote, ref, object.Checksum{}); err != nil {
					return err
				}
			}
			return nil
		}
		refs, err := r.ListRefs()
		if err != nil {
			return err
		}
		for _, ref := range refs {
			if len(pos) > 0 && !strings.HasPrefix(ref.Refspec(), pos[0]) {
				continue
			}
			e.printf("%s\n", ref.Refspec())
		}
		return nil
	}
}

func repoRevParse(f *flagSet) runFunc {
	open := repoFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("want REV")
		}
		r, c, err := openRev(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		e.printf("%s\n", c)
		return nil
	}
}

func formatXattrs(xs []object.Xattr) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("(%s, %s)", gvariant.Format(x.Name, gvariant.MustParseType("ay")), gvariant.Format(x.Value, gvariant.MustParseType("ay")))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// openRev opens the repository and resolves rev in it.
func openRev(open func() (*repo.Repo, error), rev string) (*repo.Repo, object.Checksum, error) {
	r, err := open()
	if err != nil {
		return nil, object.Checksum{}, err
	}
	c, err := r.ResolveRev(rev)
	if err != nil {
		r.Close()
		return nil, c, err
	}
	return r, c, nil
}

// openCommit opens the repository and loads the commit rev names.
func openCommit(open func() (*repo.Repo, error), rev string) (*repo.Repo, object.Checksum, *object.Commit, error) {
	r, c, err := openRev(open, rev)
	if err != nil {
		return nil, c, nil, err
	}
	cm, err := r.LoadCommit(c)
	if err != nil {
		r.Close()
		return nil, c, nil, err
	}
	return r, c, cm, nil
}
