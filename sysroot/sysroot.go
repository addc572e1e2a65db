// Package sysroot manages deployments on a host root in the libostree
// layout: a bare repository in /ostree/repo, hardlinked checkouts in
// /ostree/deploy/OS/deploy/CHECKSUM.SERIAL with their .origin files, a
// shared /var per stateroot, kernels in /boot/ostree/OS-BOOTCSUM and boot
// entries in /boot/loader.N behind the /boot/loader symlink.
//
// Every change to the set of deployments is written beside the current
// boot configuration and made current by one rename of /boot/loader
// (package bootloader). A crash at any moment leaves the old or the new
// configuration; the leftovers of an interrupted operation are never
// referenced by the current configuration and are removed at the start of
// the next one.
package sysroot

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/osupdate/os-update/bootloader"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/object"
	"golang.org/x/sys/unix"
)

// Options controls how a sysroot is opened.
type Options struct {
	// RunDir holds runtime state (the staged deployment record); it
	// defaults to <sysroot>/run, which is /run on a booted system.
	RunDir string
	// Bootloader forces a backend by name (see bootloader.ByName); empty
	// means the repository's sysroot.bootloader setting, else detection.
	Bootloader string
	// Log receives progress notes; nil discards them.
	Log io.Writer
	// NoSync skips fsync and syncfs (tests only).
	NoSync bool
	// MutableDeployments skips the immutable bit on deployment
	// directories, as OSTREE_SYSROOT_DEBUG=mutable-deployments does.
	MutableDeployments bool
	// Checkpoint, if set, is called between the steps of every write
	// (used by the crash tests to stop the process at each of them).
	Checkpoint func(step string)
}

// Sysroot is an opened sysroot and its deployments as last loaded.
type Sysroot struct {
	Path string
	opts Options
	repo *repo.Repo

	// BootVersion and SubBootVersion say which loader.N and
	// ostree/boot.N.M are current.
	BootVersion, SubBootVersion int
	// Deployments are listed in boot order, the default first.
	Deployments []*Deployment
	// Staged is the deployment waiting for finalize, if any.
	Staged *Deployment
	// Booted is the deployment the running system booted, if the
	// sysroot is the running system's.
	Booted *Deployment
	// Warnings describe damaged boot entries found by Load (for
	// example lines injected by a kernel argument with a newline, as
	// older versions accepted). A damaged entry whose deployment could be
	// identified is loaded and rewritten cleanly by the next change.
	Warnings []string
	// unreadable names entries that identify no deployment; changing the
	// deployments is refused while there are any, since their
	// deployments would be dropped and deleted.
	unreadable []string

	flushJournal bool
}

// BootedMarker exists on a system booted into a deployment (prepare-root
// creates it).
const BootedMarker = "/run/ostree-booted"

// Deployment is one deployed commit.
type Deployment struct {
	OS         string
	Commit     object.Checksum
	Serial     int
	BootCsum   string
	BootSerial int
	Index      int
	// Kargs are the kernel arguments without ostree= (and without the
	// init= that libostree adds when there is no initramfs).
	Kargs  bootloader.Kargs
	Origin *keyfile.File
	Staged bool
	// Version is the commit's "version" metadata, if any.
	Version string
	// entryName is the file name of its boot entry in the current
	// configuration (with a boot counter suffix on systemd-boot).
	entryName string
}

// Name is the deployment's directory name, CHECKSUM.SERIAL.
func (d *Deployment) Name() string { return fmt.Sprintf("%s.%d", d.Commit, d.Serial) }

// RelDir is the deployment directory relative to the sysroot.
func (d *Deployment) RelDir() string {
	return filepath.Join("ostree/deploy", d.OS, "deploy", d.Name())
}

// Pinned reports whether cleanup must keep the deployment.
func (d *Deployment) Pinned() bool {
	if d.Origin == nil {
		return false
	}
	v, _ := d.Origin.Bool("libostree-transient", "pinned", false)
	return v
}

// Refspec is the origin's refspec, or "". A deployment with layered
// packages has baserefspec instead (rpm-ostree's origin format): the
// refspec its base follows.
func (d *Deployment) Refspec() string {
	if d.Origin == nil {
		return ""
	}
	if r := d.Origin.String("origin", "refspec", ""); r != "" {
		return r
	}
	return d.Origin.String("origin", "baserefspec", "")
}

func (d *Deployment) same(o *Deployment) bool {
	return d != nil && o != nil && d.OS == o.OS && d.Commit == o.Commit && d.Serial == o.Serial
}

// Open opens the sysroot at path and loads its state.
func Open(path string, opts Options) (*Sysroot, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	r, err := repo.Open(filepath.Join(abs, "ostree/repo"))
	if err != nil {
		return nil, fmt.Errorf("open sysroot %s: %w", path, err)
	}
	if opts.RunDir == "" {
		opts.RunDir = filepath.Join(abs, "run")
	}
	if opts.NoSync {
		r.SetFsync(false)
	}
	s := &Sysroot{Path: abs, opts: opts, repo: r}
	// On a booted OSTree system (the marker prepare-root leaves), the
	// flip flushes /boot's journal for the boot loader; never elsewhere
	// (freezing a build host's root file system would stop it).
	if _, err := os.Stat(BootedMarker); err == nil && !opts.NoSync {
		s.flushJournal = true
	}
	if err := s.Load(); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the repository.
func (s *Sysroot) Close() error { return s.repo.Close() }

// Repo returns the sysroot's repository.
func (s *Sysroot) Repo() *repo.Repo { return s.repo }

func (s *Sysroot) logf(format string, args ...any) {
	if s.opts.Log != nil {
		fmt.Fprintf(s.opts.Log, format+"\n", args...)
	}
}

func (s *Sysroot) checkpoint(step string) {
	if s.opts.Checkpoint != nil {
		s.opts.Checkpoint(step)
	}
}

func (s *Sysroot) abs(rel string) string { return filepath.Join(s.Path, rel) }

func (s *Sysroot) loader() *bootloader.Loader {
	return &bootloader.Loader{BootDir: s.abs("boot"), NoSync: s.opts.NoSync, Checkpoint: s.opts.Checkpoint, FlushJournal: s.flushJournal}
}

// ostreeArg matches the ostree= kernel argument of an entry.
var ostreeArg = regexp.MustCompile(`^/ostree/boot\.([01])/([^/]+)/([^/]+)/([0-9]+)$`)

// deployLink matches the target of a bootlink.
var deployLink = regexp.MustCompile(`^\.\./\.\./\.\./deploy/([^/]+)/deploy/([0-9a-f]{64})\.([0-9]+)$`)

// Load reads the current boot configuration and the deployments it names.
func (s *Sysroot) Load() error {
	l := s.loader()
	bv, _, err := l.CurrentVersion()
	if err != nil {
		return err
	}
	s.BootVersion = bv
	s.SubBootVersion, err = s.subBootVersion(bv)
	if err != nil {
		return err
	}
	entries, err := l.ReadEntries(bv)
	if err != nil {
		return err
	}
	s.Deployments, s.Warnings, s.unreadable = nil, nil, nil
	for _, e := range entries {
		if !strings.HasPrefix(e.Name, "ostree-") {
			continue
		}
		d, damage, err := s.parseEntry(e)
		if err != nil {
			// Reading must survive a broken entry: status has to be able
			// to say what is wrong.
			s.unreadable = append(s.unreadable, e.Name)
			s.Warnings = append(s.Warnings, fmt.Sprintf("boot entry %s cannot be used: %v", e.Name, err))
			continue
		}
		if damage != "" {
			s.Warnings = append(s.Warnings, fmt.Sprintf("boot entry %s is damaged: %s; the next change of the deployments rewrites it", e.Name, damage))
		}
		d.Index = len(s.Deployments)
		d.entryName = e.Name
		s.Deployments = append(s.Deployments, d)
	}
	s.Staged = nil
	if err := s.loadStaged(); err != nil {
		return err
	}
	s.Booted = s.findBooted()
	return nil
}

func (s *Sysroot) subBootVersion(bv int) (int, error) {
	t, err := os.Readlink(s.abs(fmt.Sprintf("ostree/boot.%d", bv)))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read bootlink: %w", err)
	}
	switch t {
	case fmt.Sprintf("boot.%d.0", bv):
		return 0, nil
	case fmt.Sprintf("boot.%d.1", bv):
		return 1, nil
	}
	return 0, fmt.Errorf("ostree/boot.%d points to unexpected %q", bv, t)
}

// checkReadable refuses to change the deployments while a boot entry
// names no deployment: the new configuration would drop it and cleanup
// would delete its deployment.
func (s *Sysroot) checkReadable() error {
	if len(s.unreadable) > 0 {
		return fmt.Errorf("boot entry %s cannot be used (see status); repair or remove it in /boot/loader/entries before changing the deployments", s.unreadable[0])
	}
	return nil
}

// parseEntry reads the deployment an entry boots. damage is non-empty if
// the entry is readable but not as os-update writes it: lines injected by
// a kernel argument with a newline move the ostree= argument (written
// last) off the options line; it is then looked for on the other lines.
func (s *Sysroot) parseEntry(e *bootloader.Entry) (d *Deployment, damage string, err error) {
	kargs := bootloader.ParseKargs(e.Get("options"))
	arg, ok := kargs.Get("ostree")
	var problems []string
	for _, key := range []string{"options", "linux"} {
		if n := len(e.GetAll(key)); n > 1 {
			problems = append(problems, fmt.Sprintf("%d %q lines", n, key))
		}
	}
	if !ok {
		for _, kv := range e.Lines {
			if kv.Key == "options" {
				continue
			}
			if v, found := bootloader.ParseKargs(kv.Value).Get("ostree"); found {
				arg, ok = v, true
				problems = append(problems, fmt.Sprintf("the ostree= argument is on a %q line, not on the options line (a kernel argument held a newline)", kv.Key))
				break
			}
		}
	}
	if !ok {
		return nil, "", fmt.Errorf("no ostree= kernel argument")
	}
	m := ostreeArg.FindStringSubmatch(arg)
	if m == nil {
		return nil, "", fmt.Errorf("malformed ostree=%s", arg)
	}
	target, err := os.Readlink(s.abs(arg))
	if err != nil {
		return nil, "", fmt.Errorf("bootlink %s: %w", arg, err)
	}
	dm := deployLink.FindStringSubmatch(target)
	if dm == nil {
		return nil, "", fmt.Errorf("bootlink %s points to unexpected %q", arg, target)
	}
	d, err = s.loadDeployment(dm[1], dm[2], dm[3])
	if err != nil {
		return nil, "", err
	}
	d.BootCsum = m[3]
	d.BootSerial, _ = strconv.Atoi(m[4])
	kargs = kargs.Without("ostree")
	if v, ok := kargs.Get("init"); ok && strings.HasPrefix(v, "/ostree/boot.") {
		kargs = kargs.Without("init")
	}
	d.Kargs = kargs
	return d, strings.Join(problems, "; "), nil
}

// loadDeployment reads a deployment's origin and commit version.
func (s *Sysroot) loadDeployment(osname, csum, serial string) (*Deployment, error) {
	c, err := object.ParseChecksum(csum)
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(serial)
	if err != nil {
		return nil, err
	}
	d := &Deployment{OS: osname, Commit: c, Serial: n}
	if _, err := os.Lstat(s.abs(d.RelDir())); err != nil {
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	data, err := os.ReadFile(s.abs(d.RelDir() + ".origin"))
	switch {
	case err == nil:
		if d.Origin, err = keyfile.ParseBytes(data); err != nil {
			return nil, fmt.Errorf("deployment %s: origin: %w", d.Name(), err)
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, fmt.Errorf("deployment %s: %w", d.Name(), err)
	}
	if cm, err := s.repo.LoadCommit(c); err == nil {
		d.Version = cm.Version()
	}
	return d, nil
}

// findBooted identifies the running deployment: the one whose directory is
// "/" (same device and inode; prepare-root bind-mounts it there). This
// works whether the sysroot is opened as "/" or as "/sysroot".
func (s *Sysroot) findBooted() *Deployment {
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		return nil
	}
	for _, d := range s.Deployments {
		var st unix.Stat_t
		if unix.Stat(s.abs(d.RelDir()), &st) == nil && st.Dev == root.Dev && st.Ino == root.Ino {
			return d
		}
	}
	return nil
}

// MergeDeployment is the deployment whose /etc and kernel arguments a
// new deployment of osname inherits: the booted one if it is of that
// stateroot, else the first one of it.
func (s *Sysroot) MergeDeployment(osname string) *Deployment {
	if s.Booted != nil && s.Booted.OS == osname {
		return s.Booted
	}
	for _, d := range s.Deployments {
		if d.OS == osname {
			return d
		}
	}
	return nil
}

// Lock takes the sysroot lock (ostree/lock, shared with libostree) and
// returns its release function.
func (s *Sysroot) Lock() (func(), error) {
	fd, err := unix.Open(s.abs("ostree/lock"), unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sysroot lock: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			s.logf("Waiting for the sysroot lock held by another process")
			err = unix.Flock(fd, unix.LOCK_EX)
		}
		if err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("sysroot lock: %w", err)
		}
	}
	return func() { unix.Close(fd) }, nil
}

// OSNames lists the stateroots.
func (s *Sysroot) OSNames() ([]string, error) {
	des, err := os.ReadDir(s.abs("ostree/deploy"))
	if err != nil {
		return nil, fmt.Errorf("list stateroots: %w", err)
	}
	var out []string
	for _, de := range des {
		if de.IsDir() {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

// ValidateOSName checks a stateroot name.
func ValidateOSName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\n\x00") || len(name) > 255 {
		return fmt.Errorf("invalid stateroot name %q", name)
	}
	return nil
}
