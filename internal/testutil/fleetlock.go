package testutil

import (
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"
)

// FleetLockServer is a FleetLock server on 127.0.0.1 (a counting
// semaphore per group with owned, recursive locks, as the protocol
// describes) for tests of the client side. Refuse makes every lock
// request fail as a full semaphore would.
type FleetLockServer struct {
	URL string

	mu      sync.Mutex
	slots   int
	holders map[string]map[string]bool // group -> ids
	refuse  bool
	Log     []string // "pre-reboot ID GROUP -> STATUS", in order
}

// StartFleetLock serves a FleetLock server with slots reboot slots per
// group until the test ends.
func StartFleetLock(t testing.TB, slots int) *FleetLockServer {
	t.Helper()
	s := &FleetLockServer{slots: slots, holders: map[string]map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/pre-reboot", s.handle)
	mux.HandleFunc("POST /v1/steady-state", s.handle)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	s.URL = "http://" + ln.Addr().String()
	return s
}

// SetRefuse makes lock requests fail (true) or follow the semaphore.
func (s *FleetLockServer) SetRefuse(refuse bool) {
	s.mu.Lock()
	s.refuse = refuse
	s.mu.Unlock()
}

// Holders returns the ids holding a slot of group.
func (s *FleetLockServer) Holders(group string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range s.holders[group] {
		out = append(out, id)
	}
	return out
}

// Requests returns a copy of the request log.
func (s *FleetLockServer) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.Log...)
}

func (s *FleetLockServer) handle(w http.ResponseWriter, r *http.Request) {
	op := r.URL.Path[len("/v1/"):]
	fail := func(status int, kind, value string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"kind": kind, "value": value})
	}
	var body struct {
		ClientParams struct{ ID, Group string } `json:"client_params"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	status := http.StatusOK
	defer func() {
		s.Log = append(s.Log, op+" "+body.ClientParams.ID+" "+body.ClientParams.Group+" -> "+http.StatusText(status))
	}()
	if r.Header.Get("fleet-lock-protocol") != "true" {
		status = http.StatusBadRequest
		fail(status, "missing_header", "the fleet-lock-protocol header must be true")
		return
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.ClientParams.ID == "" || body.ClientParams.Group == "" {
		status = http.StatusBadRequest
		fail(status, "bad_body", "client_params with id and group required")
		return
	}
	id, group := body.ClientParams.ID, body.ClientParams.Group
	held := s.holders[group]
	if held == nil {
		held = map[string]bool{}
		s.holders[group] = held
	}
	if op == "steady-state" {
		delete(held, id)
		return
	}
	if held[id] {
		return // recursive
	}
	if s.refuse || len(held) >= s.slots {
		status = http.StatusConflict
		fail(status, "failed_lock_semaphore_full", "semaphore currently full, all slots are locked already")
		return
	}
	held[id] = true
}
