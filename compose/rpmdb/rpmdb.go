// Package rpmdb keeps the rpm database of a tree: it records packages with
// rpm's own `--justdb` install and erase, and reads the installed set back
// with `rpm --query`. rpm runs inside bubblewrap with the host's /usr and
// /etc read-only and only the tree writable, so a hostile tree (a symlink
// pointing out of it) cannot make rpm write anywhere else, and nothing in
// the sandbox reaches the network.
package rpmdb

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
	"github.com/osupdate/os-update/compose/treefs"
)

// DBPath is where the database lives in a tree: under /usr, so that it is
// part of the immutable commit (rpm-ostree's location).
const DBPath = "/usr/share/rpm"

// Links are the symlinks other rpm builds look through for the database:
// Fedora's rpm (>= 4.17) uses /usr/lib/sysimage/rpm, older ones
// /var/lib/rpm (which compose turns into a tmpfiles.d line).
var Links = map[string]string{
	"/usr/lib/sysimage/rpm": "../../share/rpm",
	"/var/lib/rpm":          "../../usr/share/rpm",
}

// Tool runs rpm against trees.
type Tool struct {
	RPM   string // rpm binary ("" = from PATH)
	Bwrap string // bubblewrap binary ("" = from PATH)
	// SourceDateEpoch, if non-zero, is the install time recorded in the
	// headers (rpm >= 4.18 honours SOURCE_DATE_EPOCH), so that the same
	// packages always give the same database file.
	SourceDateEpoch int64
}

const (
	sandboxTree = "/run/osupdate-tree"
	sandboxPkgs = "/run/osupdate-pkgs"
)

// run runs rpm with args in the sandbox; files are bound read-only as
// /run/osupdate-pkgs/N.rpm and their sandbox paths appended to args.
func (t *Tool) run(ctx context.Context, tree string, args []string, files []string) ([]byte, error) {
	rpmBin := t.RPM
	if rpmBin == "" {
		p, err := exec.LookPath("rpm")
		if err != nil {
			return nil, fmt.Errorf("the rpm command is needed for the rpm database: %w", err)
		}
		rpmBin = p
	}
	bwrap := t.Bwrap
	if bwrap == "" {
		p, err := exec.LookPath("bwrap")
		if err != nil {
			return nil, fmt.Errorf("bubblewrap is needed to run rpm: %w", err)
		}
		bwrap = p
	}
	abs, err := filepath.Abs(tree)
	if err != nil {
		return nil, err
	}
	bw := []string{
		"--unshare-all", "--die-with-parent", "--new-session",
		// Only what rpm needs of the host, read-only: not the whole of
		// /, whose other mounts (test directories, removable media) may
		// come and go while the sandbox is set up.
		"--ro-bind", "/usr", "/usr",
		"--ro-bind", "/etc", "/etc",
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib32", "lib64", "libx32"} {
		if target, err := os.Readlink("/" + d); err == nil {
			bw = append(bw, "--symlink", target, "/"+d)
		} else if st, err := os.Stat("/" + d); err == nil && st.IsDir() {
			bw = append(bw, "--ro-bind", "/"+d, "/"+d)
		}
	}
	bw = append(bw,
		"--proc", "/proc", "--dev", "/dev",
		"--tmpfs", "/tmp", "--tmpfs", "/run",
		"--bind", abs, sandboxTree,
		"--clearenv",
		"--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin",
		"--setenv", "HOME", "/tmp",
		"--setenv", "LANG", "C.UTF-8",
	)
	if t.SourceDateEpoch != 0 {
		bw = append(bw, "--setenv", "SOURCE_DATE_EPOCH", strconv.FormatInt(t.SourceDateEpoch, 10))
	}
	var inner []string
	for i, f := range files {
		fa, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		p := fmt.Sprintf("%s/%d.rpm", sandboxPkgs, i)
		bw = append(bw, "--ro-bind", fa, p)
		inner = append(inner, p)
	}
	bw = append(bw, "--", rpmBin, "--root", sandboxTree, "--dbpath", DBPath)
	bw = append(bw, args...)
	bw = append(bw, inner...)
	cmd := exec.CommandContext(ctx, bwrap, bw...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("rpm %s: %w: %s", strings.Join(args, " "), err, cleanStderr(stderr.String()))
	}
	return out, nil
}

// cleanStderr drops Debian's "use Alien" nagging from rpm's messages.
func cleanStderr(s string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.Contains(l, "should not be used directly install RPM packages") || strings.Contains(l, "assuming you know what you are doing") {
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "\n")
}

// Install records the package files in the tree's database (creating it):
// headers only, no files written, no scripts, no dependency checks (the
// caller has solved and unpacked).
func (t *Tool) Install(ctx context.Context, tree string, files []string) error {
	if len(files) == 0 {
		return t.Init(ctx, tree)
	}
	if err := ensureDir(tree); err != nil {
		return err
	}
	_, err := t.run(ctx, tree, []string{"--install", "--justdb", "--nodeps", "--noscripts", "--notriggers",
		"--nosignature", "--nodigest", "--ignorearch", "--ignoreos", "--replacepkgs", "--replacefiles", "--force"}, files)
	if err != nil {
		return fmt.Errorf("rpm database: %w", err)
	}
	return Tidy(tree)
}

// Init creates an empty database.
func (t *Tool) Init(ctx context.Context, tree string) error {
	if err := ensureDir(tree); err != nil {
		return err
	}
	if _, err := t.run(ctx, tree, []string{"--initdb"}, nil); err != nil {
		return fmt.Errorf("rpm database: %w", err)
	}
	return Tidy(tree)
}

// Erase removes packages (by NEVRA or name) from the database only.
func (t *Tool) Erase(ctx context.Context, tree string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	args := append([]string{"--erase", "--justdb", "--nodeps", "--noscripts", "--notriggers", "--allmatches"}, names...)
	if _, err := t.run(ctx, tree, args, nil); err != nil {
		return fmt.Errorf("rpm database: %w", err)
	}
	return Tidy(tree)
}

func ensureDir(tree string) error {
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	return root.Mkdir(DBPath, 0o755, 0, 0)
}

// Tidy removes what rpm leaves beside the database after it closed it:
// the lock file and sqlite's empty write-ahead log and shared memory file
// (a non-empty log would hold unmerged changes: that is an error).
func Tidy(tree string) error {
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	defer root.Close()
	dir := strings.TrimPrefix(DBPath, "/")
	if st, err := root.Lstat(dir + "/rpmdb.sqlite-wal"); err == nil && st.Size > 0 {
		return fmt.Errorf("rpm database: %s/rpmdb.sqlite-wal holds %d bytes not merged into the database", DBPath, st.Size)
	}
	for _, n := range []string{".rpm.lock", "rpmdb.sqlite-wal", "rpmdb.sqlite-shm"} {
		if err := root.Remove(dir + "/" + n); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rpm database: %w", err)
		}
	}
	return rollbackJournal(root, dir+"/rpmdb.sqlite")
}

// rollbackJournal switches a closed sqlite database from write-ahead-log
// mode to the rollback journal, as `PRAGMA journal_mode=DELETE` would:
// header bytes 18 and 19 (file format write/read version) go from 2 to
// 1. sqlite cannot open a WAL database in a read-only directory (a
// deployment's /usr) without its -shm file; a rollback-journal one it
// can. rpm switches back to WAL the next time it writes.
func rollbackJournal(root *treefs.Root, p string) error {
	f, err := root.OpenWrite(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rpm database: %w", err)
	}
	defer f.Close()
	hdr := make([]byte, 20)
	if _, err := f.ReadAt(hdr, 0); err != nil {
		return fmt.Errorf("rpm database %s: %w", p, err)
	}
	if string(hdr[:16]) != "SQLite format 3\x00" {
		return fmt.Errorf("rpm database %s: not an sqlite database", p)
	}
	if hdr[18] == 1 && hdr[19] == 1 {
		return nil
	}
	if _, err := f.WriteAt([]byte{1, 1}, 18); err != nil {
		return fmt.Errorf("rpm database %s: %w", p, err)
	}
	return f.Close()
}

// Exists reports whether the tree has a database.
func Exists(tree string) bool {
	_, err := os.Lstat(filepath.Join(tree, DBPath, "rpmdb.sqlite"))
	return err == nil
}

// MakeLinks creates the compatibility symlinks (see Links).
func MakeLinks(root *treefs.Root) error {
	paths := make([]string, 0, len(Links))
	for p := range Links {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if _, err := root.Lstat(p); err == nil {
			continue // a package owns it already
		}
		if err := root.Symlink(Links[p], p, 0, 0); err != nil {
			return fmt.Errorf("rpm database link %s: %w", p, err)
		}
	}
	return nil
}

// Query format: one "@" line per package, then its dependencies and files.
const queryFormat = `@\t%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\n` +
	`[P\t%{PROVIDENAME}\t%{PROVIDEFLAGS}\t%{PROVIDEVERSION}\n]` +
	`[R\t%{REQUIRENAME}\t%{REQUIREFLAGS}\t%{REQUIREVERSION}\n]` +
	`[C\t%{CONFLICTNAME}\t%{CONFLICTFLAGS}\t%{CONFLICTVERSION}\n]` +
	`[O\t%{OBSOLETENAME}\t%{OBSOLETEFLAGS}\t%{OBSOLETEVERSION}\n]` +
	`[F\t%{FILENAMES}\n]`

// Query returns every package of the tree's database, with provides,
// requires, conflicts, obsoletes and files, sorted by name and arch.
func (t *Tool) Query(ctx context.Context, tree string) ([]*rpmmd.Package, error) {
	out, err := t.run(ctx, tree, []string{"--query", "--all", "--queryformat", queryFormat}, nil)
	if err != nil {
		return nil, fmt.Errorf("read rpm database: %w", err)
	}
	pkgs, err := parseQuery(string(out))
	if err != nil {
		return nil, fmt.Errorf("read rpm database: %w", err)
	}
	return pkgs, Tidy(tree)
}

// rpm's dependency sense bits: LESS 2, GREATER 4, EQUAL 8, PREREQ 64 and
// the script-prerequisite bits.
const (
	senseCmp = 2 | 4 | 8
	sensePre = 64 | 256 | 512 | 1024 | 2048
)

func parseQuery(s string) ([]*rpmmd.Package, error) {
	var out []*rpmmd.Package
	var cur *rpmmd.Package
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if f[0] == "@" {
			if len(f) != 6 {
				return nil, fmt.Errorf("bad package line %q", sc.Text())
			}
			ep, err := strconv.Atoi(f[2])
			if err != nil {
				return nil, fmt.Errorf("bad epoch in %q", sc.Text())
			}
			cur = &rpmmd.Package{Name: f[1], Arch: f[5], EVR: rpmver.EVR{Epoch: ep, Version: f[3], Release: f[4]}}
			out = append(out, cur)
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("unexpected line %q", sc.Text())
		}
		if f[0] == "F" && len(f) == 2 {
			cur.Files = append(cur.Files, f[1])
			continue
		}
		if len(f) != 4 {
			return nil, fmt.Errorf("bad dependency line %q", sc.Text())
		}
		fl, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad flags in %q", sc.Text())
		}
		d := rpmmd.Dep{Name: f[1], Flags: rpmver.Flags((fl & senseCmp) >> 1), Pre: fl&sensePre != 0}
		if d.Flags != 0 && f[3] != "" {
			if d.EVR, err = rpmver.Parse(f[3]); err != nil {
				return nil, fmt.Errorf("bad version in %q: %w", sc.Text(), err)
			}
		} else {
			d.Flags = 0
		}
		switch f[0] {
		case "P":
			cur.Provides = append(cur.Provides, d)
		case "R":
			cur.Requires = append(cur.Requires, d)
		case "C":
			cur.Conflicts = append(cur.Conflicts, d)
		case "O":
			cur.Obsoletes = append(cur.Obsoletes, d)
		default:
			return nil, fmt.Errorf("unexpected line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Arch < out[j].Arch
	})
	return out, nil
}
