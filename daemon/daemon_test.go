package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/daemon/state"
	"github.com/osupdate/os-update/internal/testutil"
)

// stepBackend is a backend whose operations run in steps the test
// releases one at a time, so a test can observe a transaction mid-flight.
// It exercises the service (queueing, signals, cancel, history), not the
// host operations, which have their own end-to-end tests.
type stepBackend struct {
	mu      sync.Mutex
	step    chan struct{}
	ran     []string
	reqs    []Request
	repairs int
	staged  string // checksum of a staged deployment (a staged upgrade ran)
	verdict string // what a health check finds (api.Verdict*)
}

func newStepBackend() *stepBackend { return &stepBackend{step: make(chan struct{})} }

func (b *stepBackend) Status(ctx context.Context) (api.Status, error) {
	st := api.Status{Deployments: []api.Deployment{{Index: 0, OSName: "testos", Checksum: "abc", Booted: true, Default: true}}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.staged != "" {
		st.Deployments = append([]api.Deployment{{OSName: "testos", Checksum: b.staged, Staged: true}}, st.Deployments...)
	}
	return st, nil
}

func (b *stepBackend) Run(ctx context.Context, req Request, rep Reporter) (Result, error) {
	b.mu.Lock()
	b.ran = append(b.ran, req.Kind)
	b.reqs = append(b.reqs, req)
	b.mu.Unlock()
	rep.Stage("download")
	for i := uint64(1); i <= 3; i++ {
		select {
		case <-b.step:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
		rep.Progress(api.Progress{BytesDone: i * 100, BytesExpected: 300})
	}
	rep.Message("finished " + req.Kind)
	if req.Kind == KindHealthCheck {
		b.mu.Lock()
		v := &api.BootVerdict{Deployment: "testos/abc.0", Checksum: "abc", Verdict: b.verdict, Action: api.ActionMarkedGood}
		b.mu.Unlock()
		if v.Verdict != api.VerdictHealthy {
			v.Reason, v.Action = "sshd.service is failed", api.ActionNone
			return Result{Verdict: v}, errors.New("unhealthy: " + v.Reason)
		}
		return Result{Verdict: v}, nil
	}
	if req.Check {
		return Result{NoUpdate: true}, nil
	}
	if req.Stage {
		b.mu.Lock()
		b.staged = "def"
		b.mu.Unlock()
	}
	return Result{From: "abc", To: "def", Deployed: true,
		Cached: &api.CachedUpdate{Refspec: "origin:testos", Checksum: "def", Version: "2", Available: true}}, nil
}

func (b *stepBackend) DbDiff(ctx context.Context, from, to string) (*api.PackageDiff, error) {
	return nil, errors.New("no package lists here")
}

func (b *stepBackend) Repair(ctx context.Context) error {
	b.mu.Lock()
	b.repairs++
	b.mu.Unlock()
	return nil
}

type fixture struct {
	addr    string
	backend *stepBackend
	d       *Daemon
	cancel  context.CancelFunc
	done    chan error
	state   string
	// configure adjusts the daemon's configuration before each start.
	configure func(*Config)
	stepOnce  sync.Once
}

func start(t *testing.T, idle time.Duration) *fixture {
	t.Helper()
	addr := testutil.StartBus(t)
	f := &fixture{addr: addr, backend: newStepBackend(), done: make(chan error, 1), state: filepath.Join(t.TempDir(), "state.db")}
	f.startDaemon(t, idle)
	return f
}

func (f *fixture) startDaemon(t *testing.T, idle time.Duration) {
	t.Helper()
	cfg := Config{BusAddress: f.addr, StatePath: f.state, IdleExit: idle, Backend: f.backend}
	if f.configure != nil {
		f.configure(&cfg)
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.d = d
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	done := f.done
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		f.stepOnce.Do(func() { close(f.backend.step) }) // release anything still running
		<-done
		d.Close()
	})
}

// restart stops the daemon as a service stop would and starts another
// on the same state.
func (f *fixture) restart(t *testing.T) {
	t.Helper()
	f.cancel()
	err := <-f.done
	f.d.Close()
	f.done <- err // for the first daemon's cleanup
	f.done = make(chan error, 1)
	f.startDaemon(t, 0)
}

func (f *fixture) client(t *testing.T) (*dbus.Conn, chan *dbus.Signal) {
	t.Helper()
	conn, err := dbus.Connect(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.AddMatchSignal(dbus.WithMatchPathNamespace(api.TransactionPathPrefix)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 100)
	conn.Signal(ch)
	return conn, ch
}

func call(conn *dbus.Conn, method string, args ...any) (dbus.ObjectPath, error) {
	var p dbus.ObjectPath
	err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+"."+method, 0, args...).Store(&p)
	return p, err
}

// waitFinished collects signals of path until Finished.
func waitFinished(t *testing.T, ch chan *dbus.Signal, path dbus.ObjectPath) (ok bool, msg string, names []string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case s := <-ch:
			if s.Path != path {
				continue
			}
			names = append(names, strings.TrimPrefix(s.Name, api.TransactionIface+"."))
			if s.Name == api.TransactionIface+".Finished" {
				return s.Body[0].(bool), s.Body[1].(string), names
			}
		case <-timeout:
			t.Fatalf("no Finished signal for %s (got %v)", path, names)
		}
	}
}

func dbusErrName(err error) string {
	var de dbus.Error
	if errors.As(err, &de) {
		return de.Name
	}
	return ""
}

func TestUpgradeSignalsAndHistory(t *testing.T) {
	f := start(t, 0)
	conn, ch := f.client(t)
	path, err := call(conn, "Upgrade", map[string]dbus.Variant{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		f.backend.step <- struct{}{}
	}
	ok, msg, names := waitFinished(t, ch, path)
	if !ok {
		t.Fatalf("failed: %s", msg)
	}
	joined := strings.Join(names, ",")
	if !strings.Contains(joined, "Progress") || !strings.Contains(joined, "Message") {
		t.Fatalf("signals %s", joined)
	}
	v, err := conn.Object(api.BusName, path).GetProperty(api.TransactionIface + ".Outcome")
	if err != nil || v.Value().(string) != api.OutcomeDeployed {
		t.Fatalf("outcome %v %v", v, err)
	}
	var doc string
	if err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+".History", 0, uint32(10)).Store(&doc); err != nil {
		t.Fatal(err)
	}
	var h []api.HistoryEntry
	json.Unmarshal([]byte(doc), &h)
	if len(h) != 1 || h[0].Kind != "upgrade" || h[0].Result != "success" || h[0].From != "abc" || h[0].To != "def" || h[0].CallerUID != 0 {
		t.Fatalf("history %+v", h)
	}
}

func TestBusyWaitAndCancel(t *testing.T) {
	f := start(t, 0)
	conn, ch := f.client(t)
	first, err := call(conn, "Upgrade", map[string]dbus.Variant{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = call(conn, "Rollback", map[string]dbus.Variant{})
	if dbusErrName(err) != api.ErrBusy || !strings.Contains(err.Error(), string(first)) {
		t.Fatalf("second call: %v, want Busy naming %s", err, first)
	}
	queued, err := call(conn, "Rollback", map[string]dbus.Variant{api.OptWait: dbus.MakeVariant(true)})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel the first mid-stage: it must end promptly, as cancelled.
	f.backend.step <- struct{}{}
	start := time.Now()
	if err := conn.Object(api.BusName, first).Call(api.TransactionIface+".Cancel", 0).Err; err != nil {
		t.Fatal(err)
	}
	ok, msg, _ := waitFinished(t, ch, first)
	if ok || msg != "cancelled" || time.Since(start) > time.Second {
		t.Fatalf("cancel: ok=%v msg=%q after %s", ok, msg, time.Since(start))
	}
	// The queued one runs next.
	for i := 0; i < 3; i++ {
		f.backend.step <- struct{}{}
	}
	if ok, msg, _ := waitFinished(t, ch, queued); !ok {
		t.Fatalf("queued: %s", msg)
	}
	h, _ := f.d.store.History(0)
	if len(h) != 2 || h[0].Kind != "rollback" || h[0].Result != "success" || h[1].Result != "cancelled" {
		t.Fatalf("history %+v", h)
	}
}

func TestInvalidOptionsRefused(t *testing.T) {
	f := start(t, 0)
	conn, _ := f.client(t)
	cases := []struct {
		method string
		args   []any
	}{
		{"Upgrade", []any{map[string]dbus.Variant{"bogus": dbus.MakeVariant(true)}}},
		{"Upgrade", []any{map[string]dbus.Variant{api.OptCheckOnly: dbus.MakeVariant("yes")}}},
		{"KernelArgs", []any{map[string]dbus.Variant{api.OptKargsAppend: dbus.MakeVariant(true)}}},
		{"KernelArgs", []any{map[string]dbus.Variant{}}},
		{"Rebase", []any{"", map[string]dbus.Variant{}}},
		{"PkgChange", []any{[]string{}, []string{}, map[string]dbus.Variant{}}},
	}
	for _, c := range cases {
		_, err := call(conn, c.method, c.args...)
		if dbusErrName(err) != api.ErrInvalidArgs {
			t.Errorf("%s %v: %v, want InvalidArgs", c.method, c.args, err)
		}
	}
	// Wrong D-Bus argument types are refused by the bus binding.
	if _, err := call(conn, "Rebase", uint32(3), map[string]dbus.Variant{}); err == nil {
		t.Error("Rebase with a uint32 refspec accepted")
	}
	if len(f.backend.ran) != 0 {
		t.Fatalf("backend ran %v", f.backend.ran)
	}
}

func TestClientDisconnectDoesNotStopTransaction(t *testing.T) {
	f := start(t, 0)
	conn, err := dbus.Connect(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	path, err := call(conn, "Upgrade", map[string]dbus.Variant{})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	for i := 0; i < 3; i++ {
		f.backend.step <- struct{}{}
	}
	watcher, ch := f.client(t)
	_ = watcher
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		h, _ := f.d.store.History(1)
		if len(h) == 1 && h[0].Result == state.ResultSuccess {
			return
		}
		select {
		case <-ch:
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("transaction %s did not finish after its client left", path)
}

func TestRecoverMarksInterrupted(t *testing.T) {
	dir := t.TempDir()
	st, err := state.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	st.StartTransaction("upgrade", 0, "abc", time.Now())
	st.Close()
	addr := testutil.StartBus(t)
	b := newStepBackend()
	d, err := New(context.Background(), Config{BusAddress: addr, StatePath: filepath.Join(dir, "state.db"), Backend: b})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h, _ := d.store.History(0)
	if len(h) != 1 || h[0].Result != state.ResultInterrupted {
		t.Fatalf("history %+v", h)
	}
	if b.repairs != 1 {
		t.Fatalf("repair ran %d times", b.repairs)
	}
}

func TestIdleExitAndSecondInstanceRefused(t *testing.T) {
	f := start(t, 600*time.Millisecond)
	if _, err := New(context.Background(), Config{BusAddress: f.addr, StatePath: filepath.Join(t.TempDir(), "s.db"), Backend: newStepBackend()}); err == nil {
		t.Fatal("a second daemon took the bus name")
	}
	select {
	case err := <-f.done:
		if err != nil {
			t.Fatal(err)
		}
		f.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("idle daemon did not exit")
	}
	conn, _ := f.client(t)
	var has bool
	conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, api.BusName).Store(&has)
	if has {
		t.Fatal("idle daemon kept its bus name")
	}
	_ = fmt.Sprint
}

// TestAllowDowngradeReachesTheRequest: the allow-downgrade option of
// Upgrade, Rebase and Deploy is copied into the request, and labels name
// what was asked.
func TestAllowDowngradeReachesTheRequest(t *testing.T) {
	f := start(t, 0)
	conn, ch := f.client(t)
	yes := map[string]dbus.Variant{api.OptAllowDowngrade: dbus.MakeVariant(true)}
	for _, c := range []struct {
		method string
		args   []any
	}{
		{"Upgrade", []any{yes}},
		{"Rebase", []any{"origin:os/other", yes}},
		{"Deploy", []any{"1.0", yes}},
		{"Upgrade", []any{map[string]dbus.Variant{}}},
	} {
		p, err := call(conn, c.method, c.args...)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		for i := 0; i < 3; i++ {
			f.backend.step <- struct{}{}
		}
		if ok, msg, _ := waitFinished(t, ch, p); !ok {
			t.Fatalf("%s failed: %s", c.method, msg)
		}
	}
	f.backend.mu.Lock()
	defer f.backend.mu.Unlock()
	got := []bool{}
	for _, r := range f.backend.reqs {
		got = append(got, r.AllowDowngrade)
	}
	if fmt.Sprint(got) != "[true true true false]" {
		t.Fatalf("AllowDowngrade per request: %v", got)
	}
	for req, want := range map[*Request]string{
		{Kind: KindUpgrade, Check: true}:                               "check",
		{Kind: KindUpgrade, Preview: true}:                             "preview",
		{Kind: KindUpgrade, DownloadOnly: true}:                        "download",
		{Kind: KindUpgrade, Stage: true}:                               "upgrade",
		{Kind: KindUpgrade, Automatic: true, Check: true}:              "automatic-check",
		{Kind: KindUpgrade, Automatic: true, Stage: true}:              "automatic-stage",
		{Kind: KindUpgrade, Automatic: true, Stage: true, Apply: true}: "automatic-apply",
		{Kind: KindRebase, Refspec: "o:r"}:                             "rebase",
	} {
		if got := req.Label(); got != want {
			t.Errorf("%+v: label %q, want %q", *req, got, want)
		}
	}
}

// getAuthorizations calls GetAuthorizations as the test process.
func getAuthorizations(t *testing.T, conn *dbus.Conn) api.Authorizations {
	t.Helper()
	var doc string
	if err := conn.Object(api.BusName, api.ObjectPath).Call(api.SysrootIface+".GetAuthorizations", 0).Store(&doc); err != nil {
		t.Fatal(err)
	}
	var a api.Authorizations
	if err := json.Unmarshal([]byte(doc), &a); err != nil {
		t.Fatalf("GetAuthorizations %q: %v", doc, err)
	}
	return a
}

func TestGetAuthorizationsFollowsTheCaller(t *testing.T) {
	testutil.RequireRoot(t)
	setpriv := testutil.RequireTool(t, "setpriv")
	dbusSend := testutil.RequireTool(t, "dbus-send")
	f := start(t, 0)
	conn, _ := f.client(t)
	a := getAuthorizations(t, conn)
	if a.CallerUID != 0 || len(a.Actions) != len(authorizedKinds) || a.Reason != "" {
		t.Fatalf("root: %+v", a)
	}
	for _, kind := range authorizedKinds {
		if a.Actions[kind] != api.AuthYes {
			t.Errorf("root may %s: %q, want %q", kind, a.Actions[kind], api.AuthYes)
		}
	}
	// Without polkit on the bus, anyone else may change nothing, and is
	// told why.
	out := testutil.Run(t, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", dbusSend, "--bus="+f.addr,
		"--print-reply=literal", "--dest="+api.BusName, api.ObjectPath, api.SysrootIface+".GetAuthorizations")
	var nobody api.Authorizations
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &nobody); err != nil {
		t.Fatalf("GetAuthorizations as nobody %q: %v", out, err)
	}
	if nobody.CallerUID != 65534 || !strings.Contains(nobody.Reason, "uid 65534") {
		t.Fatalf("nobody: %+v", nobody)
	}
	for _, kind := range authorizedKinds {
		if nobody.Actions[kind] != api.AuthNo {
			t.Errorf("nobody may %s: %q, want %q", kind, nobody.Actions[kind], api.AuthNo)
		}
	}
}
