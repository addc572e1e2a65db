// Command realos measures os-update against `ostree` on a real operating
// system update: Debian 12 (bookworm) as released with a kernel
// (linux-image-cloud-amd64), and the same system after its pending
// bookworm-updates and bookworm-security updates (with the newer kernel
// and its initramfs). The trees are built once with debootstrap and
// converted to the OSTree layout by the compose postprocess; they are kept
// in -cache, outside the repository.
//
// Every step runs both tools as child processes, paired in the same round
// (the tool that goes first alternates), fsync on for both; wall time and
// peak RSS (the kernel's accounting of each child, getrusage) are
// reported as medians of -rounds. Sizes (archive repository, delta) are
// exact and do not depend on the machine's load.
//
//	apt-get install -y debootstrap       # once
//	go run ./bench/realos -rounds 3 [-variants minbase,standard] [-write-docs docs/BENCHMARKS.md]
//
// Run it as root on an idle machine; the first run downloads ~250 MB of
// packages per variant and takes several minutes to build the trees.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const ref = "debian/12/x86_64/cloud"

// sample is one child process (or a sequence of them) measured.
type sample struct {
	wall time.Duration
	rss  int64 // peak KiB of the largest child
}

func (a sample) plus(b sample) sample { return sample{a.wall + b.wall, max(a.rss, b.rss)} }

type bench struct {
	bin, osu, osud string
	work           string
	env            []string // for every child
	url            string
	rounds         int
	reuse          bool     // keep the server and base repositories of an earlier run
	steps          []string // run only the steps whose names contain one of these
}

// run runs one child and returns its wall time and peak RSS.
func (b *bench) run(name string, args ...string) (sample, string, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), b.env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return sample{}, out.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: wall, rss: ru.Maxrss}, out.String(), nil
}

// must is for setup steps: any failure ends the benchmark.
func (b *bench) must(name string, args ...string) string {
	_, out, err := b.run(name, args...)
	if err != nil {
		fail(err)
	}
	return out
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

func (b *bench) osuCmd(args ...string) (sample, error) {
	s, _, err := b.run(b.osu, args...)
	return s, err
}

func (b *bench) ostree(args ...string) (sample, error) {
	s, _, err := b.run("ostree", args...)
	return s, err
}

// results per step: [0] os-update, [1] ostree.
type results struct {
	order []string
	by    map[string]*[2][]sample
	sizes []string // lines of exact sizes
}

func (r *results) add(step string, tool int, s sample) {
	if r.by == nil {
		r.by = map[string]*[2][]sample{}
	}
	if r.by[step] == nil {
		r.by[step] = &[2][]sample{}
		r.order = append(r.order, step)
	}
	r.by[step][tool] = append(r.by[step][tool], s)
}

func median(xs []sample) sample {
	w := make([]time.Duration, len(xs))
	m := make([]int64, len(xs))
	for i, x := range xs {
		w[i], m[i] = x.wall, x.rss
	}
	sort.Slice(w, func(i, j int) bool { return w[i] < w[j] })
	sort.Slice(m, func(i, j int) bool { return m[i] < m[j] })
	return sample{w[len(w)/2], m[len(m)/2]}
}

func main() {
	cache := flag.String("cache", "/var/cache/os-update-bench", "where the Debian trees are built and kept between runs")
	work := flag.String("dir", "/var/tmp/os-update-realos", "scratch directory (emptied first)")
	variants := flag.String("variants", "minbase", "debootstrap variants, one pair each: minbase, standard")
	rounds := flag.Int("rounds", 3, "paired rounds per step (medians are reported)")
	buildOnly := flag.Bool("build-only", false, "build the trees and stop")
	docs := flag.String("write-docs", "", "replace the real-OS section of this BENCHMARKS.md with the table")
	sizesOnly := flag.Bool("sizes-only", false, "with -write-docs: write only the sizes (for a loaded machine), not the times")
	reuse := flag.Bool("reuse", false, "keep -dir's server and base repositories (and deltas) from an earlier run")
	steps := flag.String("steps", "", "comma-separated parts of step names to run (default: all), e.g. pull,deploy")
	flag.Parse()
	if os.Geteuid() != 0 {
		fail(fmt.Errorf("run as root (debootstrap, chroot, deployments owned by root)"))
	}
	var pairs []*pair
	for _, v := range strings.Split(*variants, ",") {
		p, err := buildPair(*cache, v)
		if err != nil {
			fail(err)
		}
		pairs = append(pairs, p)
	}
	if *buildOnly {
		for _, p := range pairs {
			fmt.Printf("%s: %s (kernel %s) -> %s (kernel %s)\n", p.variant, p.old, p.kOld, p.new, p.kNew)
		}
		return
	}
	b := &bench{work: *work, rounds: *rounds, reuse: *reuse}
	if *steps != "" {
		b.steps = strings.Split(*steps, ",")
	}
	if !b.reuse {
		exec.Command("chattr", "-R", "-i", b.work).Run()
		os.RemoveAll(b.work)
	}
	b.bin = filepath.Join(b.work, "bin")
	b.osu, b.osud = filepath.Join(b.bin, "os-update"), filepath.Join(b.bin, "os-updated")
	b.must("go", "build", "-o", b.osu, "./cmd/os-update")
	b.must("go", "build", "-o", b.osud, "./cmd/os-updated")
	var report strings.Builder
	for _, p := range pairs {
		res, err := b.measure(p)
		if err != nil {
			if res != nil {
				fmt.Print(res.table(p, false)) // what was measured before the failure
			}
			fail(fmt.Errorf("%s: %w", p.variant, err))
		}
		table := res.table(p, *sizesOnly)
		fmt.Print(table)
		report.WriteString(table)
	}
	if *docs != "" {
		if err := writeDocs(*docs, report.String(), *rounds, *variants); err != nil {
			fail(err)
		}
	}
}

// measure runs every step on one pair.
func (b *bench) measure(p *pair) (*results, error) {
	res := &results{}
	w := filepath.Join(b.work, p.variant)
	os.MkdirAll(w, 0o755)
	treeMB := func(t string) float64 { return float64(dirSize(t)) / 1e6 }
	res.sizes = append(res.sizes, fmt.Sprintf("trees: old %.0f MB (kernel %s), new %.0f MB (kernel %s)", treeMB(p.old), p.kOld, treeMB(p.new), p.kNew))

	// The server: ostree's archive repository with both commits, served
	// by os-update repo serve; ostree's delta is added below.
	srv := filepath.Join(w, "server")
	srvOSU := filepath.Join(w, "server-osu") // same commits, our delta
	base := filepath.Join(w, "base")
	var c1, c2 string
	if _, err := os.Stat(filepath.Join(base, "config")); b.reuse && err == nil {
		c2 = strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+srv, ref))
		c1 = strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+srv, ref+"^"))
		b.must("ostree", "remote", "delete", "--repo="+base, "origin")
		os.RemoveAll(filepath.Join(w, "round0"))
	} else {
		os.RemoveAll(w)
		os.MkdirAll(w, 0o755)
		b.must("ostree", "init", "--repo="+srv, "--mode=archive")
		b.must("ostree", "commit", "--repo="+srv, "-b", ref, "-s", "old", "--tree=dir="+p.old)
		c1 = strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+srv, ref))
		b.must("ostree", "commit", "--repo="+srv, "-b", ref, "-s", "new", "--tree=dir="+p.new)
		c2 = strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+srv, ref))
		b.must("cp", "-a", srv, srvOSU)

		// A bare repository at the old commit with the remote, cloned
		// for every pull and apply.
		b.must("ostree", "init", "--repo="+base, "--mode=bare")
		b.must("ostree", "pull-local", "--repo="+base, srv, c1)
		b.must("ostree", "refs", "--repo="+base, "--create=origin:"+ref, c1)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	b.url = "http://" + addr
	serve := exec.Command(b.osu, "repo", "serve", "--repo", srv, "--addr", addr)
	if err := serve.Start(); err != nil {
		return nil, err
	}
	defer func() { serve.Process.Kill(); serve.Wait() }()
	b.must("ostree", "remote", "add", "--repo="+base, "--no-gpg-verify", "--set=gpg-verify-summary=false", "origin", b.url)
	time.Sleep(300 * time.Millisecond)

	for r := 0; r < b.rounds; r++ {
		rd := filepath.Join(w, fmt.Sprintf("round%d", r))
		os.MkdirAll(rd, 0o755)
		// tools[0] is os-update; the first to run alternates.
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		each := func(step string, f func(tool int, dir string) (sample, error)) error {
			if !b.selected(step) {
				return nil
			}
			for _, t := range order {
				dir := filepath.Join(rd, fmt.Sprintf("%s-%d", strings.ReplaceAll(step, " ", "-"), t))
				s, err := f(t, dir)
				if err != nil {
					return fmt.Errorf("%s (%s): %w", step, toolName(t), err)
				}
				res.add(step, t, s)
			}
			return nil
		}
		fmt.Fprintf(os.Stderr, "%s: round %d\n", p.variant, r+1)

		if err := each("commit into bare", func(t int, dir string) (sample, error) {
			return b.commit(t, dir, "bare", p.new)
		}); err != nil {
			return res, err
		}
		if err := each("commit into archive", func(t int, dir string) (sample, error) {
			s, err := b.commit(t, dir, "archive", p.new)
			if err == nil && r == 0 {
				res.sizes = append(res.sizes, fmt.Sprintf("archive repository of the new tree, %s: %d bytes of objects", toolName(t), dirSize(filepath.Join(dir, "objects"))))
			}
			return s, err
		}); err != nil {
			return res, err
		}
		if err := each("static delta generation", func(t int, dir string) (sample, error) {
			repo := srvOSU
			if t == 1 {
				repo = srv
			}
			os.RemoveAll(filepath.Join(repo, "deltas"))
			var s sample
			var err error
			if t == 0 {
				s, err = b.osuCmd("repo", "delta", "generate", "--repo", repo, "--from", c1, "--to", c2)
			} else {
				s, err = b.ostree("static-delta", "generate", "--repo="+repo, "--from="+c1, "--to="+c2)
			}
			if err == nil && r == 0 {
				res.sizes = append(res.sizes, fmt.Sprintf("static delta old → new, %s: %d bytes (superblock + parts; fallbacks %d bytes)",
					toolName(t), dirSize(filepath.Join(repo, "deltas")), fallbackBytes(b, repo, c1, c2, t)))
			}
			return s, err
		}); err != nil {
			return res, err
		}
		b.must("ostree", "summary", "-u", "--repo="+srv)
		deltaDir := findDelta(srv)
		if err := each("static delta apply offline (ostree's delta)", func(t int, dir string) (sample, error) {
			b.must("cp", "-a", base, dir)
			defer os.RemoveAll(dir)
			if t == 0 {
				return b.osuCmd("repo", "delta", "apply-offline", "--repo", dir, deltaDir)
			}
			return b.ostree("static-delta", "apply-offline", "--repo="+dir, deltaDir)
		}); err != nil {
			return res, err
		}
		if err := each("pull by ostree's static delta into bare", func(t int, dir string) (sample, error) {
			b.must("cp", "-a", base, dir)
			defer os.RemoveAll(dir)
			return b.pull(t, dir, false, c2)
		}); err != nil {
			return res, err
		}
		fresh := ""
		if err := each("fresh pull, object walk, into bare", func(t int, dir string) (sample, error) {
			b.must("ostree", "init", "--repo="+dir, "--mode=bare")
			b.must("ostree", "remote", "add", "--repo="+dir, "--no-gpg-verify", "--set=gpg-verify-summary=false", "origin", b.url)
			if t == 1 {
				fresh = dir
			} else {
				defer os.RemoveAll(dir)
			}
			return b.pull(t, dir, true, c2)
		}); err != nil {
			return res, err
		}
		if err := each("fsck (bare, new commit)", func(t int, dir string) (sample, error) {
			if t == 0 {
				return b.osuCmd("repo", "fsck", "--repo", fresh, "-q")
			}
			return b.ostree("fsck", "--repo="+fresh)
		}); err != nil {
			return res, err
		}
		os.RemoveAll(fresh)
		if err := each("admin deploy of the update (steady state)", func(t int, dir string) (sample, error) {
			// Two deployments exist (old and new); the update's deploy
			// adds one and prunes one.
			if err := b.sysroot(t, dir, srv, c1); err != nil {
				return sample{}, err
			}
			defer b.remove(dir)
			if _, err := b.deploy(t, dir, c1); err != nil {
				return sample{}, err
			}
			// A ref keeps the update from the deploys' prune.
			b.must("ostree", "pull-local", "--repo="+dir+"/ostree/repo", srv, c2)
			b.must("ostree", "refs", "--repo="+dir+"/ostree/repo", "--create=bench/update", c2)
			return b.deploy(t, dir, c2)
		}); err != nil {
			return res, err
		}
		if err := each("host update: delta pull into the sysroot + deploy", func(t int, dir string) (sample, error) {
			if err := b.sysroot(t, dir, srv, c1); err != nil {
				return sample{}, err
			}
			defer b.remove(dir)
			s1, err := b.pull(t, dir+"/ostree/repo", false, c2)
			if err != nil {
				return sample{}, err
			}
			s2, err := b.deploy(t, dir, "origin:"+ref)
			return s1.plus(s2), err
		}); err != nil {
			return res, err
		}
		if err := each("upgrade end to end: os-updated vs ostree pull + admin deploy", func(t int, dir string) (sample, error) {
			if err := b.sysroot(t, dir, srv, c1); err != nil {
				return sample{}, err
			}
			defer b.remove(dir)
			if t == 1 {
				s1, err := b.pull(t, dir+"/ostree/repo", false, c2)
				if err != nil {
					return sample{}, err
				}
				s2, err := b.deploy(t, dir, "origin:"+ref)
				return s1.plus(s2), err
			}
			return b.daemonUpgrade(dir, c2)
		}); err != nil {
			return res, err
		}
		os.RemoveAll(rd)
	}
	if b.reuse && !b.selected("static delta generation") {
		for t, r := range []string{srvOSU, srv} {
			res.sizes = append(res.sizes, fmt.Sprintf("static delta old → new, %s (kept from an earlier run): %d bytes (superblock + parts; fallbacks %d bytes)",
				toolName(t), dirSize(filepath.Join(r, "deltas")), fallbackBytes(b, r, c1, c2, t)))
		}
	}
	return res, nil
}

func (b *bench) selected(step string) bool {
	if len(b.steps) == 0 {
		return true
	}
	for _, s := range b.steps {
		if strings.Contains(step, s) {
			return true
		}
	}
	return false
}

func toolName(t int) string {
	if t == 0 {
		return "os-update"
	}
	return "ostree"
}

func (b *bench) commit(t int, dir, mode, tree string) (sample, error) {
	if t == 0 {
		b.must(b.osu, "repo", "init", "--repo", dir, "--mode", mode)
		return b.osuCmd("repo", "commit", "--repo", dir, "-b", ref, tree)
	}
	b.must("ostree", "init", "--repo="+dir, "--mode="+mode)
	return b.ostree("commit", "--repo="+dir, "-b", ref, "--tree=dir="+tree)
}

// pull fetches origin:ref into repo (by static delta unless walk) and
// checks the ref arrived at want.
func (b *bench) pull(t int, repo string, walk bool, want string) (sample, error) {
	var s sample
	var err error
	if t == 0 {
		args := []string{"repo", "pull", "--quiet", "--repo", repo}
		if walk {
			args = append(args, "--disable-static-deltas")
		}
		s, err = b.osuCmd(append(args, "origin:"+ref)...)
	} else {
		args := []string{"pull", "--repo=" + repo}
		if walk {
			args = append(args, "--disable-static-deltas")
		}
		s, err = b.ostree(append(args, "origin", ref)...)
	}
	if err != nil {
		return s, err
	}
	got := strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+repo, "origin:"+ref))
	if got != want {
		return s, fmt.Errorf("pull into %s: origin:%s is %s, want %s", repo, ref, got, want)
	}
	return s, nil
}

// sysroot makes a sysroot with the old commit deployed from origin:ref.
func (b *bench) sysroot(t int, dir, srv, c1 string) error {
	os.MkdirAll(dir, 0o755)
	b.must("ostree", "admin", "init-fs", dir)
	b.must("ostree", "admin", "os-init", "debian", "--sysroot="+dir)
	repo := dir + "/ostree/repo"
	b.must("ostree", "remote", "add", "--repo="+repo, "--no-gpg-verify", "--set=gpg-verify-summary=false", "origin", b.url)
	b.must("ostree", "pull-local", "--repo="+repo, srv, c1)
	b.must("ostree", "refs", "--repo="+repo, "--create=origin:"+ref, c1)
	_, err := b.deploy(t, dir, "origin:"+ref)
	return err
}

func (b *bench) deploy(t int, dir, rev string) (sample, error) {
	if t == 0 {
		return b.osuCmd("admin", "deploy", "--sysroot", dir, "--os", "debian", rev)
	}
	return b.ostree("admin", "deploy", "--sysroot="+dir, "--os=debian", rev)
}

func (b *bench) remove(dir string) {
	exec.Command("chattr", "-R", "-i", dir).Run()
	os.RemoveAll(dir)
}

// daemonUpgrade runs `os-update upgrade` against a fresh os-updated on a
// private bus; the peak RSS is the larger of the client's and the
// daemon's (VmHWM).
func (b *bench) daemonUpgrade(sysroot, want string) (sample, error) {
	// Short: a unix socket path has at most 107 bytes.
	dir, err := os.MkdirTemp("", "realos-bus-")
	if err != nil {
		return sample{}, err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "bus.conf")
	os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=`+dir+`/bus.sock</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`), 0o644)
	bus := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--print-address=1")
	out, err := bus.StdoutPipe()
	if err != nil {
		return sample{}, err
	}
	if err := bus.Start(); err != nil {
		return sample{}, err
	}
	defer func() { bus.Process.Kill(); bus.Wait() }()
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		return sample{}, fmt.Errorf("dbus-daemon: %w", err)
	}
	addr = strings.TrimSpace(addr)
	var log bytes.Buffer
	d := exec.Command(b.osud, "--bus-address", addr, "--sysroot", sysroot, "--state", filepath.Join(dir, "state.db"), "--idle-exit", "0")
	d.Stderr = &log
	if err := d.Start(); err != nil {
		return sample{}, err
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	ready := false
	for i := 0; i < 200 && !ready; i++ {
		st := exec.Command(b.osu, "status")
		st.Env = append(os.Environ(), "OS_UPDATE_BUS_ADDRESS="+addr)
		ready = st.Run() == nil
		if !ready {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if !ready {
		return sample{}, fmt.Errorf("os-updated did not answer: %s", log.String())
	}
	s, err := b.osuCmd("upgrade", "--bus-address", addr)
	if err != nil {
		return s, fmt.Errorf("%w\ndaemon log:\n%s", err, log.String())
	}
	if hwm := vmHWM(d.Process.Pid); hwm > s.rss {
		s.rss = hwm
	}
	got := strings.TrimSpace(b.must("ostree", "rev-parse", "--repo="+sysroot+"/ostree/repo", "origin:"+ref))
	if got != want {
		return s, fmt.Errorf("upgrade: origin:%s is %s, want %s", ref, got, want)
	}
	return s, nil
}

// vmHWM is a process's peak resident set in KiB.
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			var kb int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:")), "%d", &kb)
			return kb
		}
	}
	return 0
}

func findDelta(repo string) string {
	var found string
	filepath.WalkDir(filepath.Join(repo, "deltas"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Name() == "superblock" {
			found = filepath.Dir(p)
		}
		return nil
	})
	if found == "" {
		fail(fmt.Errorf("no delta under %s/deltas", repo))
	}
	return found
}

// fallbackBytes sums the .filez sizes of the delta's fallback objects, as
// `ostree static-delta show` lists them.
func fallbackBytes(b *bench, repo, c1, c2 string, t int) int64 {
	out := b.must("ostree", "static-delta", "show", "--repo="+repo, c1+"-"+c2)
	var total int64
	for _, l := range strings.Split(out, "\n") {
		// "Total Fallback Size: 14190308 (14.2 MB)"
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "Total Fallback Size:"); ok {
			var n int64
			fmt.Sscanf(strings.TrimSpace(rest), "%d", &n)
			total += n
		}
	}
	return total
}

func dirSize(root string) int64 {
	var n int64
	seen := map[uint64]bool{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		n += fi.Size()
		return nil
	})
	return n
}

func (r *results) table(p *pair, sizesOnly bool) string {
	var s strings.Builder
	fmt.Fprintf(&s, "\n### Debian 12 %s + linux-image-cloud-amd64: bookworm → bookworm-updates + bookworm-security\n\n", p.variant)
	for _, l := range r.sizes {
		fmt.Fprintf(&s, "- %s\n", l)
	}
	if sizesOnly {
		return s.String()
	}
	fmt.Fprintf(&s, "\n| step | os-update | ostree | os-update / ostree time | peak RSS os-update / ostree |\n|---|---:|---:|---:|---:|\n")
	for _, step := range r.order {
		v := r.by[step]
		if len(v[0]) == 0 || len(v[1]) == 0 {
			continue // cut short by a failure
		}
		a, o := median(v[0]), median(v[1])
		fmt.Fprintf(&s, "| %s | %.2f s | %.2f s | %.2f | %.0f MB / %.0f MB |\n", step, a.wall.Seconds(), o.wall.Seconds(),
			a.wall.Seconds()/o.wall.Seconds(), float64(a.rss)/1024, float64(o.rss)/1024)
	}
	return s.String()
}

const beginMark, endMark = "<!-- realos:begin -->", "<!-- realos:end -->"

// writeDocs replaces the text between the real-OS markers of the
// benchmarks page (or appends the section).
func writeDocs(path, table string, rounds int, variants string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sec := fmt.Sprintf("%s\n```sh\ngo run ./bench/realos -rounds %d -variants %s -write-docs %s\n```\n\nMeasured %s; medians of %d paired rounds, fsync on for both tools.\n%s%s",
		beginMark, rounds, variants, path, time.Now().UTC().Format("2006-01-02"), rounds, table, endMark)
	s := string(data)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i >= 0 && j > i {
		s = s[:i] + sec + s[j+len(endMark):]
	} else {
		s += "\n## Real OS update (Debian 12)\n\n" + sec + "\n"
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
