package daemon

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"
	"github.com/osupdate/os-update/daemon/api"
	"github.com/osupdate/os-update/daemon/state"
)

// transaction is one exported Transaction object and the goroutine that
// runs its operation.
type transaction struct {
	d      *Daemon
	id     uint64
	path   dbus.ObjectPath
	req    Request
	uid    uint32
	ctx    context.Context
	cancel context.CancelFunc
	after  <-chan struct{} // closed when the transaction queued before us ends
	// done is closed once the transaction is no longer the active one,
	// before Finished is signalled: a client that saw Finished may start
	// the next transaction at once. exited is closed when run returns
	// (after a requested reboot was started).
	done   chan struct{}
	exited chan struct{}
	props  *prop.Properties

	mu         sync.Mutex
	stage      string
	stageStart time.Time
	timings    []string // "stage=duration" of finished stages, for the log
	lastEmit   time.Time
	result     Result
	err        error
}

const txnIntrospection = `
<interface name="` + api.TransactionIface + `">
  <method name="Cancel"/>
  <signal name="Message"><arg name="text" type="s"/></signal>
  <signal name="Progress">
    <arg name="stage" type="s"/>
    <arg name="bytes_done" type="t"/>
    <arg name="bytes_expected" type="t"/>
    <arg name="objects_done" type="t"/>
    <arg name="objects_total" type="t"/>
    <arg name="parts_done" type="u"/>
    <arg name="parts_total" type="u"/>
    <arg name="rate" type="t"/>
    <arg name="eta_seconds" type="t"/>
  </signal>
  <signal name="Finished"><arg name="success" type="b"/><arg name="error" type="s"/></signal>
  <property name="Kind" type="s" access="read"/>
  <property name="Initiator" type="u" access="read"/>
  <property name="Stage" type="s" access="read"/>
  <property name="Finished" type="b" access="read"/>
  <property name="Success" type="b" access="read"/>
  <property name="Error" type="s" access="read"/>
  <property name="Outcome" type="s" access="read"/>
</interface>`

func (t *transaction) export() error {
	conn := t.d.conn
	if err := conn.Export(t, t.path, api.TransactionIface); err != nil {
		return err
	}
	props, err := prop.Export(conn, t.path, prop.Map{api.TransactionIface: {
		"Kind":      {Value: t.req.Label(), Emit: prop.EmitConst},
		"Initiator": {Value: t.uid, Emit: prop.EmitConst},
		"Stage":     {Value: "queued", Emit: prop.EmitTrue},
		"Finished":  {Value: false, Emit: prop.EmitTrue},
		"Success":   {Value: false, Emit: prop.EmitTrue},
		"Error":     {Value: "", Emit: prop.EmitTrue},
		"Outcome":   {Value: "", Emit: prop.EmitTrue},
	}})
	if err != nil {
		return err
	}
	t.props = props
	xml := "<node>" + txnIntrospection + introspect.IntrospectDataString + prop.IntrospectDataString + "</node>"
	return conn.Export(introspect.Introspectable(xml), t.path, "org.freedesktop.DBus.Introspectable")
}

func (t *transaction) unexport() {
	conn := t.d.conn
	conn.Export(nil, t.path, api.TransactionIface)
	conn.Export(nil, t.path, "org.freedesktop.DBus.Properties")
	conn.Export(nil, t.path, "org.freedesktop.DBus.Introspectable")
}

// Cancel is the D-Bus method: the initiator or root may cancel.
func (t *transaction) Cancel(sender dbus.Sender) *dbus.Error {
	uid, err := t.d.callerUID(sender)
	if err != nil {
		return dbus.NewError(api.ErrAccessDenied, []any{err.Error()})
	}
	if uid != 0 && uid != t.uid {
		if _, derr := t.d.authorize(sender, "cancel"); derr != nil {
			return derr
		}
	}
	t.cancel()
	return nil
}

func (t *transaction) emit(name string, args ...any) {
	t.d.conn.Emit(t.path, api.TransactionIface+"."+name, args...)
}

// Stage implements Reporter.
func (t *transaction) Stage(name string) {
	t.mu.Lock()
	t.endStage()
	t.stage, t.stageStart = name, time.Now()
	t.mu.Unlock()
	t.props.SetMust(api.TransactionIface, "Stage", name)
	t.emit("Progress", api.Progress{Stage: name}.Args()...)
}

// endStage records the duration of the current stage; t.mu is held.
func (t *transaction) endStage() {
	if t.stage != "" {
		t.timings = append(t.timings, fmt.Sprintf("%s=%s", t.stage, time.Since(t.stageStart).Round(time.Millisecond)))
		t.stage = ""
	}
}

// Progress implements Reporter; signals are throttled to ten a second,
// except the one that completes the expected bytes.
func (t *transaction) Progress(p api.Progress) {
	t.mu.Lock()
	now := time.Now()
	complete := p.BytesExpected > 0 && p.BytesDone >= p.BytesExpected
	if !complete && now.Sub(t.lastEmit) < 100*time.Millisecond {
		t.mu.Unlock()
		return
	}
	t.lastEmit = now
	stage, since := t.stage, now.Sub(t.stageStart)
	t.mu.Unlock()
	p.Stage, p.Rate, p.ETASeconds = stage, 0, 0
	if secs := since.Seconds(); secs > 0.2 {
		p.Rate = uint64(float64(p.BytesDone) / secs)
		if p.Rate > 0 && p.BytesExpected > p.BytesDone {
			p.ETASeconds = (p.BytesExpected - p.BytesDone) / p.Rate
		}
	}
	t.emit("Progress", p.Args()...)
}

// Message implements Reporter.
func (t *transaction) Message(msg string) { t.emit("Message", msg) }

func (t *transaction) run() {
	defer close(t.exited)
	d := t.d
	select {
	case <-t.after:
	case <-t.ctx.Done():
	}
	d.setActive(t)
	var res Result
	var err error
	start := time.Now()
	if err = t.ctx.Err(); err == nil {
		// The from-commit is recorded from the result: the backend reads
		// it from the same view of the sysroot the operation uses.
		if t.id, err = d.store.StartTransaction(t.req.Label(), t.uid, "", start); err == nil {
			if t.req.Kind == KindHealthCheck {
				t.req.Verdicts, err = d.store.Verdicts()
			}
			if err == nil {
				res, err = d.backend.Run(t.ctx, t.req, t)
			}
		}
	}
	result := state.ResultSuccess
	msg := ""
	switch {
	case err != nil && errors.Is(err, context.Canceled):
		result, msg = state.ResultCancelled, "cancelled"
	case err != nil:
		result, msg = state.ResultFailed, err.Error()
	}
	if t.id != 0 {
		if ferr := d.store.FinishTransaction(t.id, result, res.From, res.To, msg, res.Note, time.Now()); ferr != nil {
			d.logf("history: %v", ferr)
		}
	}
	if res.Abandoned != nil {
		d.recordVerdict(t.ctx, *res.Abandoned)
	}
	if res.Verdict != nil {
		d.recordVerdict(t.ctx, *res.Verdict)
	}
	d.pruneVerdicts()
	if err == nil && res.Cached != nil {
		if cerr := d.store.SetCachedUpdate(*res.Cached); cerr != nil {
			d.logf("cached update: %v", cerr)
		}
	}
	t.mu.Lock()
	t.result, t.err = res, err
	t.endStage()
	timings := strings.Join(t.timings, " ")
	t.mu.Unlock()
	t.props.SetMust(api.TransactionIface, "Outcome", outcome(res, err))
	t.props.SetMust(api.TransactionIface, "Success", err == nil)
	t.props.SetMust(api.TransactionIface, "Error", msg)
	d.refreshProperties()
	// Stop being the active transaction before anyone hears it ended.
	d.setActive(nil)
	close(t.done)
	t.props.SetMust(api.TransactionIface, "Finished", true)
	t.emit("Finished", err == nil, msg)
	d.transactionEnded(t.req, res, err)
	d.logf("transaction %s (%s by uid %d): %s %s [%s total=%s]", t.path, t.req.Label(), t.uid, result, msg, timings, time.Since(start).Round(time.Millisecond))
	// An idle daemon should be small: give the transaction's memory back.
	debug.FreeOSMemory()
	// An unhealthy boot that was rolled back fails its transaction and
	// still reboots: that is the point of the rollback.
	if (err == nil || res.Verdict != nil) && t.req.Reboot && res.Deployed {
		if rerr := d.reboot(); rerr != nil {
			d.logf("reboot: %v", rerr)
			t.emit("Message", fmt.Sprintf("reboot failed: %v", rerr))
		}
	}
}

// outcome summarizes a result for clients (the Outcome property).
func outcome(res Result, err error) string {
	switch {
	case err != nil:
		return ""
	case res.NoUpdate:
		return api.OutcomeNoUpdate
	case res.Deployed:
		return api.OutcomeDeployed
	}
	return api.OutcomeDone
}
