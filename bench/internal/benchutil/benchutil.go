// Package benchutil holds what the benchmark programs share: running a
// child process with the kernel's accounting of it, generating OS-like
// trees, and a byte-counting HTTP proxy.
package benchutil

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is the cost of one child process.
type Result struct {
	Wall   time.Duration
	CPU    time.Duration // user + system
	MaxRSS int64         // KiB
	Stdout string
}

// Run runs a command and measures it.
func Run(name string, args ...string) (Result, error) {
	cmd := exec.Command(name, args...)
	var stderr, stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("%s %s: %v: %s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return Result{Wall: wall, CPU: cpu, MaxRSS: ru.Maxrss, Stdout: stdout.String()}, nil
}

// Must exits on error.
func Must(r Result, err error) Result {
	if err != nil {
		Fail(err)
	}
	return r
}

// Fail prints the error and exits 1.
func Fail(err error) {
	fmt.Fprintln(os.Stderr, "error:", err)
	os.Exit(1)
}

// Generate writes an OS-like tree: mostly small files, some medium, a few
// large, each half text and half random bytes, in ~1,300 directories.
func Generate(root string, files, totalMB int, rng *rand.Rand) ([]string, error) {
	sizes := make([]int, files)
	var sum int64
	for i := range sizes {
		switch p := rng.Float64(); {
		case p < 0.85:
			sizes[i] = 512 + rng.Intn(7*1024)
		case p < 0.995:
			sizes[i] = 32*1024 + rng.Intn(160*1024)
		default:
			sizes[i] = 1<<20 + rng.Intn(4<<20)
		}
		sum += int64(sizes[i])
	}
	scale := float64(int64(totalMB)<<20) / float64(sum)
	var paths []string
	for i, sz := range sizes {
		rel := filepath.Join("usr", fmt.Sprintf("d%02d", i%97), fmt.Sprintf("s%02d", i%13), fmt.Sprintf("f%05d", i))
		if err := WriteFile(filepath.Join(root, rel), int(float64(sz)*scale), int64(i), rng); err != nil {
			return nil, err
		}
		paths = append(paths, rel)
	}
	return paths, nil
}

// WriteFile writes size bytes: half text seeded by seed, half random.
func WriteFile(p string, size int, seed int64, rng *rand.Rand) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	words := []byte("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ")
	buf := make([]byte, size)
	half := size / 2
	for j := 0; j < half; j++ {
		buf[j] = words[(j+int(seed))%len(words)]
	}
	rng.Read(buf[half:])
	return os.WriteFile(p, buf, 0o644)
}

// FreeAddr returns a free 127.0.0.1 address.
func FreeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// WaitListen waits until addr accepts connections.
func WaitListen(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s", addr, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// CountingProxy is a reverse proxy on 127.0.0.1 that counts the response
// body bytes it sends to clients.
type CountingProxy struct {
	Addr  string
	bytes atomic.Int64
	srv   *http.Server
}

// NewCountingProxy starts a proxy in front of target (http://HOST:PORT).
func NewCountingProxy(target string) (*CountingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &CountingProxy{Addr: ln.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &p.bytes}
		return nil
	}
	p.srv = &http.Server{Handler: rp}
	go p.srv.Serve(ln)
	return p, nil
}

// Take returns the bytes sent since the last call.
func (p *CountingProxy) Take() int64 { return p.bytes.Swap(0) }

// Close stops the proxy.
func (p *CountingProxy) Close() error { return p.srv.Close() }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(b []byte) (int, error) {
	n, err := c.ReadCloser.Read(b)
	c.n.Add(int64(n))
	return n, err
}
