package boot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osupdate/os-update/daemon/api"
)

// bootTimeout bounds one boot (firmware, extlinux, kernel, initramfs,
// init, dbus, os-updated) under TCG on a loaded machine: generous, since
// no test may fail because the machine is busy.
const bootTimeout = 4 * time.Minute

// vm is one qemu run of the guest, driven through its serial console.
type vm struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	console []byte // everything the guest printed
	pos     int    // how far expectations have consumed it
	notify  chan struct{}
	exited  chan struct{}
	log     *os.File
	seq     int

	allowPanic bool
}

// overlay gives a scenario its own copy of the base image (sparse), so
// each starts from the same v1 disk. A raw copy rather than a qcow2
// overlay: a power cut (SIGKILL of qemu) must lose only what the guest
// had not flushed, with no image format of qemu's own in between.
func overlay(t *testing.T, base, dir, name string) string {
	p := filepath.Join(dir, name+".raw")
	os.Remove(p)
	run(t, "", nil, "cp", "--sparse=always", base, p)
	return p
}

// startVM boots disk (qcow2) with the updates disk attached read-only.
// No network (-nic none); the serial console is the test's channel;
// -no-reboot makes a guest reboot end the qemu process.
func startVM(t *testing.T, name, disk, updates, logDir string) *vm {
	t.Helper()
	return startVMWith(t, name, disk, updates, logDir, vmOptions{})
}

// vmOptions change how a VM runs.
type vmOptions struct {
	// reboot lets a guest reboot stay in the same qemu process (without
	// it, a reboot ends qemu).
	reboot bool
	// allowPanic: a kernel panic on the console is expected, not a
	// failed boot.
	allowPanic bool
}

func startVMWith(t *testing.T, name, disk, updates, logDir string, o vmOptions) *vm {
	t.Helper()
	qemu, _ := exec.LookPath("qemu-system-x86_64")
	args := []string{
		"-machine", "pc,accel=tcg", "-m", "768", "-smp", "1",
		"-display", "none", "-monitor", "none", "-serial", "stdio",
		"-nic", "none",
		"-drive", "file=" + disk + ",format=raw,if=virtio,cache=writeback",
		"-drive", "file=" + updates + ",format=raw,if=virtio,readonly=on",
	}
	if !o.reboot {
		args = append(args, "-no-reboot")
	}
	v := &vm{t: t, name: name, notify: make(chan struct{}, 1), exited: make(chan struct{}), allowPanic: o.allowPanic}
	f, err := os.OpenFile(filepath.Join(logDir, "console-"+strings.ReplaceAll(name, "/", "_")+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	v.log = f
	v.cmd = exec.Command(qemu, args...)
	v.stdin, _ = v.cmd.StdinPipe()
	out, _ := v.cmd.StdoutPipe()
	v.cmd.Stderr = v.cmd.Stdout
	if err := v.cmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	fmt.Fprintf(f, "\n===== boot %s at %s =====\n", name, time.Now().Format(time.RFC3339))
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				v.mu.Lock()
				v.console = append(v.console, buf[:n]...)
				v.mu.Unlock()
				f.Write(buf[:n])
				select {
				case v.notify <- struct{}{}:
				default:
				}
			}
			if err != nil {
				break
			}
		}
		v.cmd.Wait()
		close(v.exited)
	}()
	t.Cleanup(func() { v.kill(); f.Close() })
	return v
}

// tail is the end of the console, for failure messages.
func (v *vm) tail() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	s := string(v.console)
	if len(s) > 6000 {
		s = s[len(s)-6000:]
	}
	return s
}

var fatalBoot = regexp.MustCompile(`Kernel panic|os-update initramfs: FATAL.*|OSU-GUEST: .*`)

// fatalNoPanic is fatalBoot for a test that expects kernel panics.
var fatalNoPanic = regexp.MustCompile(`os-update initramfs: FATAL.*|OSU-GUEST: .*`)

// expect waits until re matches the console after what was consumed,
// then consumes through the match. It fails fast when qemu exits or the
// boot fails visibly.
func (v *vm) expect(re *regexp.Regexp, timeout time.Duration) []string {
	v.t.Helper()
	m, err := v.expectErr(re, timeout)
	if err != nil {
		v.t.Fatalf("%s: %v\nconsole tail:\n%s", v.name, err, v.tail())
	}
	return m
}

func (v *vm) expectErr(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.After(timeout)
	for {
		v.mu.Lock()
		rest := v.console[v.pos:]
		if loc := re.FindSubmatchIndex(rest); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = string(rest[loc[2*i]:loc[2*i+1]])
				}
			}
			v.pos += loc[1]
			v.mu.Unlock()
			return m, nil
		}
		fatal := fatalBoot
		if v.allowPanic {
			fatal = fatalNoPanic
		}
		bad := fatal.Find(rest)
		v.mu.Unlock()
		if bad != nil {
			return nil, fmt.Errorf("guest failed: %s", bad)
		}
		select {
		case <-v.notify:
		case <-v.exited:
			// One last look: the match may be in the final output.
			v.mu.Lock()
			found := re.Match(v.console[v.pos:])
			v.mu.Unlock()
			if found {
				continue
			}
			return nil, fmt.Errorf("qemu exited while waiting for %q", re)
		case <-deadline:
			return nil, fmt.Errorf("timed out after %s waiting for %q", timeout, re)
		}
	}
}

// waitBooted waits for rcS's ready line.
func (v *vm) waitBooted() {
	v.t.Helper()
	v.expect(regexp.MustCompile(`OSU-GUEST-READY (\S+)`), bootTimeout)
}

// send types a command line without waiting for it.
func (v *vm) send(line string) {
	v.t.Helper()
	if _, err := io.WriteString(v.stdin, line+"\n"); err != nil {
		v.t.Fatalf("%s: write to the console: %v", v.name, err)
	}
}

// run runs a shell command in the guest and returns its output (stdout
// and stderr) and exit status.
func (v *vm) run(cmd string, timeout time.Duration) (string, int) {
	v.t.Helper()
	v.seq++
	n := v.seq
	// The quotes keep the markers from matching the command's own echo.
	v.send(fmt.Sprintf("echo '@@'B%d; %s 2>&1; echo '@@'E%d \"$?\"", n, cmd, n))
	m := v.expect(regexp.MustCompile(fmt.Sprintf(`@@B%d\r?\n((?s:.*?))@@E%d (\d+)`, n, n)), timeout)
	rc, _ := strconv.Atoi(m[2])
	return strings.ReplaceAll(m[1], "\r", ""), rc
}

// must runs a command that has to succeed.
func (v *vm) must(cmd string, timeout time.Duration) string {
	v.t.Helper()
	out, rc := v.run(cmd, timeout)
	if rc != 0 {
		v.t.Fatalf("%s: %q exited %d:\n%s\nconsole tail:\n%s", v.name, cmd, rc, out, v.tail())
	}
	return out
}

// status is `os-update status --json` in the guest.
func (v *vm) status() api.Status {
	v.t.Helper()
	out := v.must("os-update status --json", 2*time.Minute)
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		v.t.Fatalf("%s: status --json: %v\n%s", v.name, err, out)
	}
	return st
}

// booted returns the booted deployment's checksum and checks that
// exactly one deployment is booted.
func (v *vm) booted() api.Deployment {
	v.t.Helper()
	st := v.status()
	var b []api.Deployment
	for _, d := range st.Deployments {
		if d.Booted {
			b = append(b, d)
		}
	}
	if len(b) != 1 {
		v.t.Fatalf("%s: %d booted deployments in %+v", v.name, len(b), st.Deployments)
	}
	return b[0]
}

// reboot asks the guest to reboot cleanly (busybox init runs rcK) and
// waits for qemu to exit (-no-reboot).
func (v *vm) reboot() {
	v.t.Helper()
	v.send("reboot")
	v.waitExit(3 * time.Minute)
}

func (v *vm) waitExit(timeout time.Duration) {
	v.t.Helper()
	select {
	case <-v.exited:
	case <-time.After(timeout):
		v.t.Fatalf("%s: qemu did not exit within %s\nconsole tail:\n%s", v.name, timeout, v.tail())
	}
}

// kill is the power cut: qemu dies at once; what the guest had not
// flushed to its disk is lost.
func (v *vm) kill() {
	if v.cmd.Process != nil {
		v.cmd.Process.Kill()
	}
	<-v.exited
}

// consoleSince returns the console text from offset on.
func (v *vm) consoleLen() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.console)
}

func (v *vm) consoleFrom(off int) string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return string(bytes.ReplaceAll(v.console[off:], []byte("\r"), nil))
}
