package state

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/osupdate/os-update/daemon/api"
)

func TestHistoryRecoverAndSettings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	a, _ := s.StartTransaction("upgrade", 0, "aaa", now)
	if err := s.FinishTransaction(a, ResultSuccess, "", "bbb", "", "a note", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	b, _ := s.StartTransaction("rollback", 1000, "bbb", now)
	if err := s.FinishTransaction(999, ResultFailed, "", "", "x", "", now); err == nil {
		t.Fatal("finishing an unknown transaction succeeded")
	}
	s.Close()

	// A daemon that died leaves b running; the next start recovers it.
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rec, err := s.Recover(now.Add(time.Minute))
	if err != nil || len(rec) != 1 || rec[0].ID != b || rec[0].Result != ResultInterrupted {
		t.Fatalf("recover: %+v %v", rec, err)
	}
	h, _ := s.History(0)
	if len(h) != 2 || h[0].ID != b || h[1].To != "bbb" || h[1].From != "aaa" || h[1].Note != "a note" || h[0].CallerUID != 1000 {
		t.Fatalf("history %+v", h)
	}
	if h1, _ := s.History(1); len(h1) != 1 {
		t.Fatalf("limit ignored: %d", len(h1))
	}
	if cu, err := s.CachedUpdate(); err != nil || cu != nil {
		t.Fatalf("cached update before any check: %v %v", cu, err)
	}
	s.SetCachedUpdate(api.CachedUpdate{Checksum: "ccc", Available: true})
	if cu, _ := s.CachedUpdate(); cu == nil || cu.Checksum != "ccc" {
		t.Fatalf("cached update %+v", cu)
	}
	if _, err := s.Get("origin"); !errors.Is(err, ErrNotSet) {
		t.Fatalf("missing setting: %v", err)
	}
	s.Set("origin", "remote:ref")
	if v, _ := s.Get("origin"); v != "remote:ref" {
		t.Fatalf("setting %q", v)
	}
}

func TestSecondOpenTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(path); err == nil {
		t.Fatal("a second open of a locked state file succeeded")
	}
}

func TestVerdictsPersistAndPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []api.BootVerdict{
		{Deployment: "os/aaa.0", Verdict: api.VerdictHealthy, Good: true},
		{Deployment: "os/bbb.0", Verdict: api.VerdictUnhealthy, Reason: "x exited 1"},
		{Deployment: "os/bbb.0", Verdict: api.VerdictUnhealthy, Reason: "x exited 2"},
	} {
		if err := s.SetVerdict(v); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Verdicts()
	if err != nil || len(got) != 2 || !got["os/aaa.0"].Good || got["os/bbb.0"].Reason != "x exited 2" {
		t.Fatalf("verdicts %+v %v", got, err)
	}
	if err := s.PruneVerdicts(map[string]bool{"os/bbb.0": true}); err != nil {
		t.Fatal(err)
	}
	if got, _ = s.Verdicts(); len(got) != 1 || got["os/bbb.0"].Verdict != api.VerdictUnhealthy {
		t.Fatalf("after prune %+v", got)
	}
}

func TestRecordAddsFinishedEntry(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first, _ := s.StartTransaction("upgrade", 0, "", time.Unix(100, 0))
	id, err := s.Record(api.HistoryEntry{Kind: "automatic-reboot", To: "abc", Result: ResultFailed, Error: "reboot: exit status 1", Start: 200, End: 200})
	if err != nil || id != first+1 {
		t.Fatalf("record: id %d err %v (first %d)", id, err, first)
	}
	h, _ := s.History(0)
	if len(h) != 2 || h[0].ID != id || h[0].Kind != "automatic-reboot" || h[0].Error != "reboot: exit status 1" || h[0].To != "abc" {
		t.Fatalf("history %+v", h)
	}
	// Recover leaves recorded events alone.
	if got, _ := s.Recover(time.Unix(300, 0)); len(got) != 1 || got[0].ID != first {
		t.Fatalf("recover %+v", got)
	}
}
