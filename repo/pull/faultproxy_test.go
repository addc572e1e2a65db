package pull

import (
	"bytes"
	"io"
	"math/rand"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy forwards GETs to an upstream server and, with probability
// rate, injects one fault per request: a dropped connection, a truncated
// body, a flipped byte, a stall, or a 500.
type faultProxy struct {
	upstream string
	client   *http.Client
	mu       sync.Mutex
	rng      *rand.Rand
	rate     float64
	stall    time.Duration
	enabled  atomic.Bool
	faults   map[string]int
	// failAfter, if > 0, answers 500 to every request after that many.
	failAfter atomic.Int64
	count     atomic.Int64
}

func newFaultProxy(upstream string, seed int64, rate float64) *faultProxy {
	p := &faultProxy{
		upstream: strings.TrimSuffix(upstream, "/"),
		client:   &http.Client{Transport: &http.Transport{DisableCompression: true}},
		rng:      rand.New(rand.NewSource(seed)),
		rate:     rate,
		stall:    3 * time.Second,
		faults:   map[string]int{},
	}
	p.enabled.Store(true)
	return p
}

func (p *faultProxy) pick() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.rng.Float64() >= p.rate {
		return ""
	}
	kinds := []string{"drop", "truncate", "flip", "stall", "500"}
	k := kinds[p.rng.Intn(len(kinds))]
	p.faults[k]++
	return k
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := p.count.Add(1)
	if fa := p.failAfter.Load(); fa > 0 && n > fa {
		http.Error(w, "injected outage", http.StatusInternalServerError)
		return
	}
	fault := ""
	if p.enabled.Load() {
		fault = p.pick()
	}
	if fault == "500" {
		http.Error(w, "injected", http.StatusInternalServerError)
		return
	}
	if fault == "drop" {
		hijackClose(w)
		return
	}
	resp, err := p.client.Get(p.upstream + r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if resp.StatusCode != 200 || len(body) == 0 {
		w.WriteHeader(resp.StatusCode)
		w.Write(body)
		return
	}
	switch fault {
	case "flip":
		body = bytes.Clone(body)
		i := len(body) / 2
		body[i] ^= 0x20
	case "stall":
		w.Header().Set("Content-Length", itoa(len(body)))
		w.WriteHeader(200)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(p.stall):
		}
		return
	case "truncate":
		w.Header().Set("Content-Length", itoa(len(body)))
		w.WriteHeader(200)
		w.Write(body[:len(body)/2])
		w.(http.Flusher).Flush()
		hijackClose(w)
		return
	}
	w.Header().Set("Content-Length", itoa(len(body)))
	w.WriteHeader(200)
	w.Write(body)
}

func itoa(n int) string { return strconv.Itoa(n) }

func hijackClose(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

// redirectLoop redirects every request to itself.
type redirectLoop struct{}

func (redirectLoop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, r.URL.Path+"x", http.StatusFound)
}

// stallAll sends headers and then nothing, until the client gives up.
type stallAll struct{ p *faultProxy }

func (s stallAll) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "100")
	w.WriteHeader(200)
	w.(http.Flusher).Flush()
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}
