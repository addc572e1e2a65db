package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/internal/testutil"
)

// TestNoDaemonHint: without a bus, or a bus without os-updated, host
// commands say where os-updated should be and how to point at another bus.
func TestNoDaemonHint(t *testing.T) {
	dead := "unix:path=" + filepath.Join(t.TempDir(), "no-bus")
	t.Setenv("OS_UPDATE_BUS_ADDRESS", dead)
	var out, errOut bytes.Buffer
	if code := Main([]string{"status"}, &out, &errOut); code != ExitFailure {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"cannot reach os-updated", dead, "os-updated serves on the system bus", "D-Bus activation", "--bus-address", "OS_UPDATE_BUS_ADDRESS"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("%q lacks %q", errOut.String(), want)
		}
	}
	// A running bus on which nobody owns the name (and nothing activates it).
	addr := testutil.StartBus(t)
	errOut.Reset()
	if code := Main([]string{"status", "--bus-address", addr}, &out, &errOut); code != ExitFailure ||
		!strings.Contains(errOut.String(), "os-updated is not running on the bus at "+addr) || !strings.Contains(errOut.String(), "--bus-address") {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}

// silentListener accepts connections and never answers, like a stuck bus;
// accepted receives a value per connection.
func silentListener(t *testing.T) (addr string, accepted chan struct{}) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "silent")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	accepted = make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "unix:path=" + sock, accepted
}

// silentDaemon owns os-updated's name on a real bus and never answers a
// call; called receives the name of each method called.
func silentDaemon(t *testing.T) (addr string, called chan string) {
	t.Helper()
	addr = testutil.StartBus(t)
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	called = make(chan string, 10)
	hang := func(name string) func() (string, *dbus.Error) {
		return func() (string, *dbus.Error) {
			called <- name
			<-release
			return "", dbus.MakeFailedError(errors.New("released"))
		}
	}
	if err := conn.ExportMethodTable(map[string]any{"GetStatus": hang("GetStatus")}, api.ObjectPath, api.SysrootIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName(api.BusName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("request name: %v %v", reply, err)
	}
	return addr, called
}

// TestCallTimeout: a bus that accepts the connection but never answers,
// and an os-updated that never replies, both fail within --timeout with
// an error that says so.
func TestCallTimeout(t *testing.T) {
	silentBus, _ := silentListener(t)
	for name, addr := range map[string]string{"bus": silentBus, "daemon": func() string { a, _ := silentDaemon(t); return a }()} {
		var out, errOut bytes.Buffer
		start := time.Now()
		code := Main([]string{"status", "--bus-address", addr, "--timeout", "1s"}, &out, &errOut)
		took := time.Since(start)
		want := "accepted the connection but did not answer within 1s (--timeout)"
		if name == "daemon" {
			want = "no answer to GetStatus from os-updated on the bus at " + addr + " within 1s (--timeout)"
		}
		if code != ExitFailure || !strings.Contains(errOut.String(), want) {
			t.Errorf("%s: exit %d, %q; want %q", name, code, errOut.String(), want)
		}
		if took < time.Second || took > 30*time.Second {
			t.Errorf("%s: took %s with --timeout 1s", name, took)
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// osUpdateBinary builds cmd/os-update once for the tests that signal it.
func osUpdateBinary(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "go")
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cli-os-update-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "os-update")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/osupdate/os-update/cmd/os-update").CombinedOutput()
		if err != nil {
			binErr = errors.New(string(out))
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v", binErr)
	}
	return binPath
}

// sigterm starts the binary, waits for ready, sends SIGTERM and returns
// how long the process took to end after it, its error and stderr.
func sigterm(t *testing.T, args []string, ready func()) (time.Duration, error, string) {
	t.Helper()
	cmd := exec.Command(osUpdateBinary(t), args...)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	ready()
	cmd.Process.Signal(syscall.SIGTERM)
	start := time.Now()
	select {
	case err := <-done:
		return time.Since(start), err, errOut.String()
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("os-update %v still running 60s after SIGTERM; stderr: %s", args, errOut.String())
		return 0, nil, ""
	}
}

// TestSIGTERMEndsWaitingClient: SIGTERM ends a client waiting on a silent
// bus or a silent daemon at once, although --timeout is long.
func TestSIGTERMEndsWaitingClient(t *testing.T) {
	bus, accepted := silentListener(t)
	// The signal goes once the client is connecting (its handler is set).
	took, err, stderr := sigterm(t, []string{"status", "--bus-address", bus, "--timeout", "10m"}, func() {
		select {
		case <-accepted:
		case <-time.After(60 * time.Second):
			t.Fatal("os-update never connected")
		}
	})
	if err == nil || !strings.Contains(stderr, "error: interrupted") || took > 20*time.Second {
		t.Errorf("silent bus: %v after %s, stderr %q", err, took, stderr)
	}
	addr, called := silentDaemon(t)
	took, err, stderr = sigterm(t, []string{"status", "--bus-address", addr, "--timeout", "10m"}, func() {
		select {
		case <-called:
		case <-time.After(60 * time.Second):
			t.Fatal("os-update never called GetStatus")
		}
	})
	if err == nil || !strings.Contains(stderr, "error: interrupted") || took > 20*time.Second {
		t.Errorf("silent daemon: %v after %s, stderr %q", err, took, stderr)
	}
}

// blockingBackend runs every transaction until it is cancelled.
type blockingBackend struct {
	started   chan struct{}
	cancelled chan struct{}
}

func (b *blockingBackend) Status(context.Context) (api.Status, error) { return api.Status{}, nil }
func (b *blockingBackend) DbDiff(context.Context, string, string) (*api.PackageDiff, error) {
	return nil, errors.New("no package lists")
}
func (b *blockingBackend) Repair(context.Context) error { return nil }
func (b *blockingBackend) Run(ctx context.Context, req daemon.Request, rep daemon.Reporter) (daemon.Result, error) {
	rep.Stage("download")
	close(b.started)
	<-ctx.Done()
	close(b.cancelled)
	return daemon.Result{}, ctx.Err()
}

// TestSIGTERMCancelsTransaction: as docs/daemon.md says, interrupting a
// client cancels the transaction it started, and the client ends.
func TestSIGTERMCancelsTransaction(t *testing.T) {
	addr := testutil.StartBus(t)
	b := &blockingBackend{started: make(chan struct{}), cancelled: make(chan struct{})}
	d, err := daemon.New(context.Background(), daemon.Config{BusAddress: addr, StatePath: filepath.Join(t.TempDir(), "state.db"), Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran; d.Close() })

	took, err, stderr := sigterm(t, []string{"upgrade", "--bus-address", addr}, func() {
		select {
		case <-b.started:
		case <-time.After(60 * time.Second):
			t.Fatal("the transaction never started")
		}
	})
	if err == nil || !strings.Contains(stderr, "Cancelling...") || !strings.Contains(stderr, "error: cancelled") || took > 30*time.Second {
		t.Errorf("upgrade: %v after %s, stderr %q", err, took, stderr)
	}
	select {
	case <-b.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the daemon's transaction was not cancelled")
	}
}
