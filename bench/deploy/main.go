// Command deploy benchmarks deploying a ~20,000-file commit: os-update's
// sysroot.Deploy against `ostree admin deploy`, on sysroots of the same kind
// (init-fs + os-init, bare repository, same commit objects), fsync on.
//
// Each round deploys the base commit into a fresh sysroot (first install)
// and then an upgrade commit on top (with an /etc merge). It also reports
// os-update's time to flip: from "deployment files ready" (checkout, /etc
// merge and origin done) to "entries swapped" (the rename of /boot/loader
// and the fsync of /boot).
//
//	go run ./bench/deploy [-files 20000] [-rounds 3] [-dir /var/tmp]
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/sysroot"
)

func main() {
	files := flag.Int("files", 20000, "files in the commit")
	rounds := flag.Int("rounds", 3, "rounds (medians are reported)")
	base := flag.String("dir", os.TempDir(), "scratch directory")
	flag.Parse()
	if err := run(*files, *rounds, *base); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// writeTree makes n files in 100-file directories, sizes 64 B..16 KiB,
// plus a kernel, os-release and some /usr/etc defaults.
func writeTree(dir string, n int, seed int64) error {
	rng := rand.New(rand.NewSource(seed))
	buf := make([]byte, 16<<10)
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, "usr/share/bench", fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if i%1000 == 0 {
			p = filepath.Join(dir, "usr/etc/bench", fmt.Sprintf("conf%05d", i))
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		size := 64 + rng.Intn(len(buf)-64)
		rng.Read(buf[:size])
		if err := os.WriteFile(p, buf[:size], 0o644); err != nil {
			return err
		}
	}
	for p, c := range map[string]string{
		"usr/lib/modules/6.1.0-bench/vmlinuz":       "KERNEL",
		"usr/lib/modules/6.1.0-bench/initramfs.img": "INITRAMFS",
		"usr/lib/os-release":                        "PRETTY_NAME=\"Bench OS\"\n",
		"usr/etc/hostname":                          "bench\n",
	} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			return err
		}
	}
	for _, d := range []string{"var", "sysroot"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	return nil
}

func commit(repoPath, tree, version string) (object.Checksum, error) {
	r, err := repo.Open(repoPath)
	if err != nil {
		return object.Checksum{}, err
	}
	defer r.Close()
	var md object.Metadata
	md.Set("version", gvariant.NewVariant("s", version))
	return r.CommitDir(context.Background(), tree, repo.CommitOptions{Branch: "bench/os", Metadata: md})
}

type sample struct{ first, upgrade, flip time.Duration }

func run(n, rounds int, base string) error {
	work, err := os.MkdirTemp(base, "bench-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	t1, t2 := filepath.Join(work, "tree1"), filepath.Join(work, "tree2")
	if err := writeTree(t1, n, 1); err != nil {
		return err
	}
	if err := writeTree(t2, n, 1); err != nil {
		return err
	}
	// The upgrade changes 5% of the files.
	for i := 0; i < n; i += 20 {
		p := filepath.Join(t2, "usr/share/bench", fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		os.WriteFile(p, []byte(fmt.Sprintf("changed %d", i)), 0o644)
	}
	fmt.Printf("commit: %d files (+kernel, os-release); upgrade changes %d files\n\n", n+4, n/20)

	prep := func(dir string, ostreeTool bool) (string, string, error) {
		if ostreeTool {
			os.MkdirAll(dir, 0o755)
			if out, err := exec.Command("ostree", "admin", "init-fs", dir).CombinedOutput(); err != nil {
				return "", "", fmt.Errorf("ostree init-fs: %v %s", err, out)
			}
			if out, err := exec.Command("ostree", "admin", "os-init", "bench", "--sysroot", dir).CombinedOutput(); err != nil {
				return "", "", fmt.Errorf("ostree os-init: %v %s", err, out)
			}
		} else {
			if err := sysroot.InitFS(dir); err != nil {
				return "", "", err
			}
			s, err := sysroot.Open(dir, sysroot.Options{})
			if err != nil {
				return "", "", err
			}
			err = s.InitOS("bench")
			s.Close()
			if err != nil {
				return "", "", err
			}
		}
		c1, err := commit(dir+"/ostree/repo", t1, "1")
		if err != nil {
			return "", "", err
		}
		c2, err := commit(dir+"/ostree/repo", t2, "2")
		return c1.String(), c2.String(), err
	}

	var ours, theirs []sample
	for r := 0; r < rounds; r++ {
		// os-update
		dir := filepath.Join(work, fmt.Sprintf("ours%d", r))
		c1, c2, err := prep(dir, false)
		if err != nil {
			return err
		}
		var smp sample
		for i, c := range []string{c1, c2} {
			var ready, swapped time.Time
			opts := sysroot.Options{MutableDeployments: true, Checkpoint: func(step string) {
				switch step {
				case "deployment-finished":
					ready = time.Now()
				case "after-rename":
					swapped = time.Now()
				}
			}}
			start := time.Now()
			s, err := sysroot.Open(dir, opts)
			if err != nil {
				return err
			}
			_, err = s.Deploy(context.Background(), sysroot.DeployOptions{OS: "bench", Rev: c, OriginRefspec: "bench/os"})
			s.Close()
			if err != nil {
				return err
			}
			d := time.Since(start)
			if i == 0 {
				smp.first = d
			} else {
				smp.upgrade = d
				smp.flip = swapped.Sub(ready)
			}
		}
		ours = append(ours, smp)
		os.RemoveAll(dir)

		// ostree
		dir = filepath.Join(work, fmt.Sprintf("ostree%d", r))
		c1, c2, err = prep(dir, true)
		if err != nil {
			return err
		}
		smp = sample{}
		for i, c := range []string{c1, c2} {
			cmd := exec.Command("ostree", "admin", "deploy", "--sysroot", dir, "--os", "bench", c)
			cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_DEBUG=mutable-deployments")
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("ostree admin deploy: %v\n%s", err, out)
			}
			if i == 0 {
				smp.first = time.Since(start)
			} else {
				smp.upgrade = time.Since(start)
			}
		}
		theirs = append(theirs, smp)
		os.RemoveAll(dir)
	}
	med := func(xs []sample, f func(sample) time.Duration) time.Duration {
		v := make([]time.Duration, len(xs))
		for i, x := range xs {
			v[i] = f(x)
		}
		sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
		return v[len(v)/2]
	}
	first := func(s sample) time.Duration { return s.first }
	upg := func(s sample) time.Duration { return s.upgrade }
	flip := func(s sample) time.Duration { return s.flip }
	fmt.Printf("%-28s %12s %12s %8s\n", "median of "+fmt.Sprint(rounds), "os-update", "ostree", "ratio")
	fmt.Printf("%-28s %12v %12v %7.2fx\n", "first deploy", med(ours, first).Round(time.Millisecond), med(theirs, first).Round(time.Millisecond),
		float64(med(theirs, first))/float64(med(ours, first)))
	fmt.Printf("%-28s %12v %12v %7.2fx\n", "upgrade deploy (+/etc merge)", med(ours, upg).Round(time.Millisecond), med(theirs, upg).Round(time.Millisecond),
		float64(med(theirs, upg))/float64(med(ours, upg)))
	fmt.Printf("os-update time to flip (files ready -> entries swapped): %v\n", med(ours, flip).Round(time.Microsecond))
	return nil
}
