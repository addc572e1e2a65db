package sysroot

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/osupdate/os-update/repo/object"
)

// The crash harness re-executes the test binary as a child that runs one
// operation on a copy of a prepared sysroot and SIGKILLs itself at the
// K-th checkpoint (or is killed by the parent after a random delay). The
// parent then checks the invariants on what is left and runs the next
// operation on it.

func TestMain(m *testing.M) {
	switch {
	case os.Getenv("OSU_CRASH_CHILD") == "1":
		os.Exit(crashChild())
	case os.Getenv("OSU_PR_CHILD") == "1":
		os.Exit(prepareRootChild())
	case os.Getenv("OSU_SEPBOOT_CHILD") == "1":
		os.Exit(sepBootChild())
	case os.Getenv("OSU_PROBE") == "1":
		os.Exit(probe())
	}
	os.Exit(m.Run())
}

func crashChild() int {
	at, _ := strconv.Atoi(os.Getenv("OSU_CRASH_AT"))
	count := 0
	opts := Options{NoSync: true, MutableDeployments: true, Checkpoint: func(string) {
		count++
		if count == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}}
	s, err := Open(os.Getenv("OSU_CRASH_SYSROOT"), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx := context.Background()
	if err := crashOp(ctx, s, os.Getenv("OSU_CRASH_OP")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(count)
	return 0
}

func crashOp(ctx context.Context, s *Sysroot, op string) error {
	var err error
	switch op {
	case "deploy":
		_, err = s.Deploy(ctx, DeployOptions{OS: "testos", Rev: "os"})
	case "rollback":
		_, err = s.Rollback(ctx)
	case "stage-finalize":
		if _, err = s.Deploy(ctx, DeployOptions{OS: "testos", Rev: "os", Stage: true}); err == nil {
			_, err = s.Finalize(ctx)
		}
	case "undeploy":
		_, err = s.Undeploy(ctx, s.Deployments[1].Name())
	case "cleanup":
		_, err = s.Cleanup(ctx, true)
	default:
		err = fmt.Errorf("unknown op %q", op)
	}
	return err
}

type crashCase struct {
	op string
	// setup prepares the template; it returns the allowed deployment
	// lists (by commit, default first) after a crash.
	setup func(t *testing.T, s *Sysroot) [][]object.Checksum
	// next is the operation run after the crash; it must succeed.
	next func(s *Sysroot) error
}

func TestCrashConsistency(t *testing.T) {
	runs := 42 // per operation; 5 operations
	if v, err := strconv.Atoi(os.Getenv("OSU_CRASH_RUNS")); err == nil {
		runs = v
	}
	ctx := context.Background()
	two := func(t *testing.T, s *Sysroot) (object.Checksum, object.Checksum) {
		c1 := commitTree(t, s.Repo(), "os", treeSpec{version: "1", files: map[string]string{"usr/etc/a": "a"}})
		deploy(t, s, "os")
		c2 := commitTree(t, s.Repo(), "os", treeSpec{version: "2", files: map[string]string{"usr/etc/a": "a2", "usr/share/x": "x"}})
		os.WriteFile(filepath.Join(s.Path, s.Deployments[0].RelDir(), "etc/local"), []byte("l"), 0o644)
		return c1, c2
	}
	cases := []crashCase{
		{op: "deploy", setup: func(t *testing.T, s *Sysroot) [][]object.Checksum {
			c1, c2 := two(t, s)
			return [][]object.Checksum{{c1}, {c2, c1}}
		}, next: func(s *Sysroot) error {
			_, err := s.Deploy(ctx, DeployOptions{OS: "testos", Rev: "os"})
			return err
		}},
		{op: "rollback", setup: func(t *testing.T, s *Sysroot) [][]object.Checksum {
			c1, c2 := two(t, s)
			deploy(t, s, "os")
			return [][]object.Checksum{{c2, c1}, {c1, c2}}
		}, next: func(s *Sysroot) error { _, err := s.Rollback(ctx); return err }},
		{op: "stage-finalize", setup: func(t *testing.T, s *Sysroot) [][]object.Checksum {
			c1, c2 := two(t, s)
			return [][]object.Checksum{{c1}, {c2, c1}}
		}, next: func(s *Sysroot) error {
			if _, err := s.Finalize(ctx); err != nil && !errors.Is(err, ErrNothingStaged) {
				return err
			}
			return nil
		}},
		{op: "undeploy", setup: func(t *testing.T, s *Sysroot) [][]object.Checksum {
			c1, c2 := two(t, s)
			deploy(t, s, "os")
			return [][]object.Checksum{{c2, c1}, {c2}}
		}, next: func(s *Sysroot) error {
			if len(s.Deployments) > 1 {
				_, err := s.Undeploy(ctx, s.Deployments[1].Name())
				return err
			}
			_, err := s.Cleanup(ctx, true)
			return err
		}},
		{op: "cleanup", setup: func(t *testing.T, s *Sysroot) [][]object.Checksum {
			c1, c2 := two(t, s)
			deploy(t, s, "os")
			// Leftovers of crashed operations, and an unreferenced commit.
			c3 := commitTree(t, s.Repo(), "other", treeSpec{version: "3"})
			s.Repo().SetRef("", "other", object.Checksum{})
			junk := filepath.Join(s.Path, "ostree/deploy/testos/deploy", c3.String()+".0")
			writeTree(t, junk, treeSpec{version: "3"})
			os.MkdirAll(filepath.Join(s.Path, fmt.Sprintf("boot/loader.%d/entries", 1-s.BootVersion)), 0o755)
			os.MkdirAll(filepath.Join(s.Path, "boot/ostree/testos-0000"), 0o755)
			os.MkdirAll(filepath.Join(s.Path, fmt.Sprintf("ostree/boot.%d.%d/testos", s.BootVersion, 1-s.SubBootVersion)), 0o755)
			return [][]object.Checksum{{c2, c1}}
		}, next: func(s *Sysroot) error { _, err := s.Cleanup(ctx, true); return err }},
	}
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	total := 0
	for _, tc := range cases {
		t.Run(tc.op, func(t *testing.T) {
			tmpl := filepath.Join(t.TempDir(), "template")
			s := newSysroot(t, tmpl)
			allowed := tc.setup(t, s)
			s.Close()
			// Count the checkpoints of an uninterrupted run.
			n := func() int {
				dir := copySysroot(t, tmpl)
				out, err := runChild(t, dir, tc.op, 0, 0)
				if err != nil {
					t.Fatalf("uninterrupted %s: %v\n%s", tc.op, err, out)
				}
				n, err := strconv.Atoi(strings.TrimSpace(lastLine(out)))
				if err != nil || n == 0 {
					t.Fatalf("checkpoint count %q", out)
				}
				return n
			}()
			t.Logf("%s: %d checkpoints", tc.op, n)
			for i := 0; i < runs; i++ {
				dir := copySysroot(t, tmpl)
				at, delay := 0, time.Duration(0)
				if i%3 == 2 {
					delay = time.Duration(rng.Intn(40000)) * time.Microsecond
				} else {
					at = 1 + rng.Intn(n)
				}
				out, err := runChild(t, dir, tc.op, at, delay)
				killed := isKilled(err)
				if err != nil && !killed {
					t.Fatalf("run %d (at %d): %v\n%s", i, at, err, out)
				}
				what := fmt.Sprintf("run %d (checkpoint %d/%d, delay %v, killed %v)", i, at, n, delay, killed)
				s := openSysroot(t, dir)
				checkConsistent(t, s)
				got := commits(s)
				ok := false
				for _, a := range allowed {
					if fmt.Sprint(a) == fmt.Sprint(got) {
						ok = true
					}
				}
				if !ok {
					t.Fatalf("%s: deployments %v, want one of %v", what, got, allowed)
				}
				if err := tc.next(s); err != nil {
					t.Fatalf("%s: next operation: %v", what, err)
				}
				checkConsistent(t, s)
				checkNoLeftovers(t, s)
				total++
			}
		})
	}
	t.Logf("%d crash runs", total)
}

func commits(s *Sysroot) []object.Checksum {
	var out []object.Checksum
	for _, d := range s.Deployments {
		out = append(out, d.Commit)
	}
	return out
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// copySysroot copies a template sysroot, keeping hardlinks (deployment
// files are links to repository objects), ownership and modes.
func copySysroot(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "sysroot")
	type devIno struct{ dev, ino uint64 }
	seen := map[devIno]string{}
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		default:
			k := devIno{uint64(st.Dev), st.Ino}
			if first, ok := seen[k]; ok {
				return os.Link(first, target)
			}
			seen[k] = target
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(target, b, 0o600); err != nil {
				return err
			}
		}
		if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		return os.Chmod(target, fi.Mode()&(os.ModePerm|os.ModeSticky|os.ModeSetuid|os.ModeSetgid))
	})
	if err != nil {
		t.Fatalf("copy sysroot: %v", err)
	}
	return dst
}

func runChild(t *testing.T, dir, op string, at int, delay time.Duration) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OSU_CRASH_CHILD=1", "OSU_CRASH_SYSROOT="+dir, "OSU_CRASH_OP="+op,
		"OSU_CRASH_AT="+strconv.Itoa(at))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if delay > 0 {
		timer := time.AfterFunc(delay, func() { cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	return out.String(), err
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}
