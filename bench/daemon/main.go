// Command daemon-bench measures the host side end to end: os-updated's idle
// memory, `os-update status` latency, and an upgrade (pull + deploy) split
// by stage, next to `ostree pull` + `ostree admin deploy` doing the same
// update from the same server in the same run.
//
//	go run ./bench/daemon -dir /var/tmp/osu-bench-daemon -files 20000 -mb 300
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

var work string

func run(env []string, name string, args ...string) (string, time.Duration) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		os.Exit(1)
	}
	return string(out), d
}

func writeTree(root string, files, mb int, version int, changeFrac float64) {
	rng := rand.New(rand.NewSource(7))
	per := mb << 20 / files
	for _, d := range []string{"usr/lib/modules/6.1.0", "usr/etc", "usr/bin"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(root, "usr/lib/modules/6.1.0/vmlinuz"), []byte(fmt.Sprintf("kernel %d", version)), 0o644)
	os.WriteFile(filepath.Join(root, "usr/lib/modules/6.1.0/initramfs.img"), []byte(fmt.Sprintf("initramfs %d", version)), 0o644)
	os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=benchos\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/etc/hostname"), []byte("bench\n"), 0o644)
	buf := make([]byte, per)
	for i := 0; i < files; i++ {
		dir := filepath.Join(root, "usr/share", fmt.Sprintf("d%03d", i%211))
		os.MkdirAll(dir, 0o755)
		rng.Read(buf[:per/2])
		for j := per / 2; j < per; j++ {
			buf[j] = byte('a' + (i+j)%26)
		}
		changed := rng.Float64() < changeFrac
		if version > 1 && changed {
			copy(buf, fmt.Sprintf("version %d ", version))
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), buf, 0o644)
	}
}

func vmRSS(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(sc.Text(), "VmRSS:"))
		}
	}
	return "?"
}

func main() {
	flag.StringVar(&work, "dir", "/var/tmp/osu-bench-daemon", "work directory (removed first)")
	files := flag.Int("files", 20000, "files in the tree")
	mb := flag.Int("mb", 300, "tree size in MB")
	change := flag.Float64("change", 0.05, "fraction of files changed by the update")
	flag.Parse()
	exec.Command("chattr", "-R", "-i", work).Run()
	os.RemoveAll(work)
	os.MkdirAll(work, 0o755)
	bin := filepath.Join(work, "bin")
	osu, osud := filepath.Join(bin, "os-update"), filepath.Join(bin, "os-updated")
	run(nil, "go", "build", "-o", osu, "./cmd/os-update")
	run(nil, "go", "build", "-o", osud, "./cmd/os-updated")
	gnupg := filepath.Join(work, "gnupg")
	os.Mkdir(gnupg, 0o700)
	genv := []string{"GNUPGHOME=" + gnupg}
	run(genv, "gpg", "--batch", "--passphrase", "", "--quick-gen-key", "Bench <b@example.invalid>", "ed25519", "sign", "never")
	sec, _ := exec.Command("env", "GNUPGHOME="+gnupg, "gpg", "--batch", "--export-secret-keys").Output()
	pub, _ := exec.Command("env", "GNUPGHOME="+gnupg, "gpg", "--batch", "--export").Output()
	os.WriteFile(filepath.Join(work, "secret.gpg"), sec, 0o600)
	os.WriteFile(filepath.Join(work, "public.gpg"), pub, 0o644)

	server := filepath.Join(work, "server")
	run(nil, osu, "repo", "init", "--repo", server, "--mode", "archive")
	const ref = "benchos/stable"
	publish := func(v int) {
		tree := filepath.Join(work, fmt.Sprintf("tree%d", v))
		writeTree(tree, *files, *mb, v, *change)
		c, _ := run(nil, osu, "repo", "commit", "--repo", server, "-b", ref, "--add-metadata-string", fmt.Sprintf("version=%d", v), "--bootable", tree)
		c = strings.TrimSpace(c)
		run(nil, osu, "repo", "sign", "--repo", server, c, "--gpg-key", filepath.Join(work, "secret.gpg"))
		if v > 1 {
			run(nil, osu, "repo", "delta", "generate", "--repo", server, "--to", c)
		}
		run(nil, osu, "repo", "summary", "--repo", server, "-u", "--gpg-key", filepath.Join(work, "secret.gpg"))
	}
	publish(1)
	port := 20000 + rand.Intn(20000)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	srv := exec.Command(osu, "repo", "serve", "--repo", server, "--addr", fmt.Sprintf("127.0.0.1:%d", port))
	srv.Start()
	defer srv.Process.Kill()
	time.Sleep(300 * time.Millisecond)

	// Two sysroots at version 1: one ours, one ostree's.
	ours, theirs := filepath.Join(work, "sysroot-osu"), filepath.Join(work, "sysroot-ostree")
	run(nil, osu, "admin", "init-fs", ours)
	run(nil, osu, "admin", "os-init", "benchos", "--sysroot", ours)
	run(nil, osu, "repo", "remote", "add", "--repo", ours+"/ostree/repo", "--gpg-import", filepath.Join(work, "public.gpg"), "origin", url)
	run(nil, osu, "repo", "pull", "--quiet", "--repo", ours+"/ostree/repo", "origin:"+ref)
	run(nil, osu, "admin", "deploy", "--sysroot", ours, "--os", "benchos", "origin:"+ref)
	os.MkdirAll(theirs, 0o755)
	run(nil, "ostree", "admin", "init-fs", theirs)
	run(nil, "ostree", "admin", "os-init", "benchos", "--sysroot="+theirs)
	run(nil, "ostree", "remote", "add", "--repo="+theirs+"/ostree/repo", "--gpg-import="+filepath.Join(work, "public.gpg"), "origin", url)
	run(nil, "ostree", "pull", "--repo="+theirs+"/ostree/repo", "origin:"+ref)
	run(nil, "ostree", "admin", "deploy", "--sysroot="+theirs, "--os=benchos", "origin:"+ref)

	// A private bus and the daemon.
	busConf := filepath.Join(work, "bus.conf")
	os.WriteFile(busConf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN" "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:path=`+work+`/bus.sock</listen><auth>EXTERNAL</auth>
<policy context="default"><allow user="*"/><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy></busconfig>`), 0o644)
	bus := exec.Command("dbus-daemon", "--config-file="+busConf, "--nofork", "--print-address=1")
	busOut, _ := bus.StdoutPipe()
	bus.Start()
	defer bus.Process.Kill()
	addr, _ := bufio.NewReader(busOut).ReadString('\n')
	addr = strings.TrimSpace(addr)
	logPath := filepath.Join(work, "os-updated.log")
	logf, _ := os.Create(logPath)
	daemon := exec.Command(osud, "--bus-address", addr, "--sysroot", ours, "--state", filepath.Join(work, "state.db"), "--idle-exit", "0")
	daemon.Stderr = logf
	daemon.Start()
	defer daemon.Process.Kill()
	benv := []string{"OS_UPDATE_BUS_ADDRESS=" + addr}
	for i := 0; i < 100; i++ {
		if exec.Command("env", "OS_UPDATE_BUS_ADDRESS="+addr, osu, "status").Run() == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rssIdle := vmRSS(daemon.Process.Pid)

	var lat []time.Duration
	for i := 0; i < 30; i++ {
		_, d := run(benv, osu, "status", "--json")
		lat = append(lat, d)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	publish(2)
	_, osuTotal := run(benv, osu, "upgrade")
	time.Sleep(time.Second)
	rssAfter := vmRSS(daemon.Process.Pid)
	logData, _ := os.ReadFile(logPath)
	stages := regexp.MustCompile(`upgrade by uid 0\): success  \[(.*)\]`).FindStringSubmatch(string(logData))

	_, ostreePull := run(nil, "ostree", "pull", "--repo="+theirs+"/ostree/repo", "origin:"+ref)
	_, ostreeDeploy := run(nil, "ostree", "admin", "deploy", "--sysroot="+theirs, "--os=benchos", "origin:"+ref)

	fmt.Printf("tree: %d files, %d MB; update changes %.0f%% of the files (static delta available)\n\n", *files, *mb, *change*100)
	fmt.Printf("| measure | os-update | ostree | ratio |\n|---|---|---|---|\n")
	fmt.Printf("| os-updated RSS, idle after start | %s | | |\n", rssIdle)
	fmt.Printf("| os-updated RSS, idle after an upgrade | %s | | |\n", rssAfter)
	fmt.Printf("| `os-update status --json` latency, median of 30 | %.1f ms | | |\n", float64(lat[len(lat)/2].Microseconds())/1000)
	fmt.Printf("| `os-update status --json` latency, worst of 30 | %.1f ms | | |\n", float64(lat[len(lat)-1].Microseconds())/1000)
	total := ostreePull + ostreeDeploy
	fmt.Printf("| upgrade, total (client view) | %.2f s | %.2f s (pull %.2f + deploy %.2f) | %.2fx |\n",
		osuTotal.Seconds(), total.Seconds(), ostreePull.Seconds(), ostreeDeploy.Seconds(), total.Seconds()/osuTotal.Seconds())
	if len(stages) == 2 {
		fmt.Printf("| upgrade stages (daemon log) | %s | | |\n", stages[1])
	}
}
