package pull

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	neturl "net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// errNotFound is wrapped when the server answers 403, 404 or 410, which
// libostree treats alike as "absent".
var errNotFound = errors.New("not found on the server")

// permanentError marks a failure that retrying cannot fix.
type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func permanent(err error) error { return permanentError{err} }

// fetcher does HTTP GETs with retries, stall detection and byte counting.
type fetcher struct {
	client   *http.Client
	retries  int
	backoff  time.Duration
	stall    time.Duration
	bytes    atomic.Int64
	requests atomic.Int64
	onRetry  func(RetryEvent)
}

// TLSOptions are a remote's TLS settings.
type TLSOptions struct {
	Permissive bool   // do not verify the server certificate
	CAPath     string // PEM bundle of trusted CAs (instead of the system's)
	ClientCert string // PEM client certificate
	ClientKey  string // PEM client key
}

func (o TLSOptions) config() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Permissive}
	if o.CAPath != "" {
		pem, err := os.ReadFile(o.CAPath)
		if err != nil {
			return nil, fmt.Errorf("tls-ca-path: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls-ca-path %s: no certificates", o.CAPath)
		}
		cfg.RootCAs = pool
	}
	if o.ClientCert != "" || o.ClientKey != "" {
		cert, err := tls.LoadX509KeyPair(o.ClientCert, o.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("tls client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// maxRedirects bounds redirect chains (and so redirect loops).
const maxRedirects = 5

func newFetcher(opts *Options, tlsOpts TLSOptions) (*fetcher, error) {
	tcfg, err := tlsOpts.config()
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{Timeout: opts.ConnectTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tcfg,
		TLSHandshakeTimeout:   opts.ConnectTimeout,
		ResponseHeaderTimeout: opts.StallTimeout,
		MaxIdleConnsPerHost:   opts.Connections,
		MaxConnsPerHost:       opts.Connections,
		IdleConnTimeout:       90 * time.Second,
		// Objects are compressed already; and a transparently gunzipped
		// body would escape the size bounds checked here.
		DisableCompression: true,
		ForceAttemptHTTP2:  false,
	}
	// file:// remotes (a repository on a local disk, e.g. removable
	// media): served by the standard library's file transport, so they
	// share every check, bound and retry of HTTP.
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	client := &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return permanent(fmt.Errorf("more than %d redirects (from %s)", maxRedirects, via[0].URL))
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return permanent(fmt.Errorf("redirect to unsupported URL %s", req.URL))
			}
			return nil
		},
	}
	return &fetcher{client: client, retries: opts.Retries, backoff: opts.RetryBackoff, stall: opts.StallTimeout, onRetry: opts.Retry}, nil
}

func (f *fetcher) close() { f.client.CloseIdleConnections() }

// stallReader cancels its request when no byte arrives for a while.
type stallReader struct {
	r       io.Reader
	timer   *time.Timer
	d       time.Duration
	stalled *atomic.Bool
	f       *fetcher
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
		s.f.bytes.Add(int64(n))
	}
	if err != nil && err != io.EOF {
		if s.stalled.Load() {
			err = fmt.Errorf("stalled: no data for %v", s.d)
		}
		err = transient(err)
	}
	return n, err
}

// transientError marks a network-level read failure (retried).
type transientError struct{ err error }

func (t transientError) Error() string { return t.err.Error() }
func (t transientError) Unwrap() error { return t.err }

func transient(err error) error { return transientError{err} }

// get fetches url and hands the body to fn. Transport errors, 5xx, 408,
// 429, truncated bodies and errors returned by fn (for instance a checksum
// mismatch from corruption in transit) are retried with exponential
// backoff; 4xx are not. fn must be safe to call again after a failure.
func (f *fetcher) get(ctx context.Context, url string, fn func(body io.Reader, length int64) error) error {
	var last error
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := f.try(ctx, url, fn)
		if err == nil {
			return nil
		}
		last = err
		var perm permanentError
		if errors.As(err, &perm) || errors.Is(err, errNotFound) || ctx.Err() != nil {
			break
		}
		if attempt >= f.retries {
			break
		}
		d := f.backoff << attempt
		if d > 10*time.Second {
			d = 10 * time.Second
		}
		d = d/2 + rand.N(d/2+1)
		f.retrying(url, attempt, err, d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if ctx.Err() != nil && !errors.Is(last, errNotFound) {
		return ctx.Err()
	}
	return last
}

// retrying reports a retry (attempt counts from 0) to Options.Retry.
func (f *fetcher) retrying(url string, attempt int, err error, backoff time.Duration) {
	if f.onRetry != nil {
		f.onRetry(RetryEvent{URL: url, Attempt: attempt + 1, Attempts: f.retries, Err: err, Backoff: backoff})
	}
}

func (f *fetcher) try(ctx context.Context, url string, fn func(io.Reader, int64) error) error {
	f.requests.Add(1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return permanent(fmt.Errorf("GET %s: %w", url, err))
	}
	req.Header.Set("User-Agent", "os-update")
	resp, err := f.client.Do(req)
	if err != nil {
		var perm permanentError
		if errors.As(err, &perm) {
			return perm
		}
		if isTLSVerifyError(err) {
			return permanent(fmt.Errorf("GET %s: %w", url, unwrapURLError(err)))
		}
		return fmt.Errorf("GET %s: %w", url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 410:
		return fmt.Errorf("GET %s: %s: %w", url, resp.Status, errNotFound)
	case resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
		return fmt.Errorf("GET %s: server error %s", url, resp.Status)
	default:
		return permanent(fmt.Errorf("GET %s: %s", url, resp.Status))
	}
	var stalled atomic.Bool
	timer := time.AfterFunc(f.stall, func() { stalled.Store(true); cancel() })
	defer timer.Stop()
	body := &stallReader{r: resp.Body, timer: timer, d: f.stall, stalled: &stalled, f: f}
	if err := fn(body, resp.ContentLength); err != nil {
		if strings.Contains(err.Error(), url) {
			return err
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return permanent(fmt.Errorf("GET %s: %w", url, err))
		}
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// unwrapURLError drops net/http's `Get "URL": ` wrapping: our errors
// name the URL once already.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// readAll reads a body of at most max bytes.
func readAll(body io.Reader, length, max int64) ([]byte, error) {
	if length > max {
		return nil, permanent(fmt.Errorf("size %d exceeds the %d byte limit", length, max))
	}
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, permanent(fmt.Errorf("larger than the %d byte limit", max))
	}
	if length >= 0 && int64(len(b)) != length {
		return nil, transient(fmt.Errorf("got %d of %d bytes: %w", len(b), length, io.ErrUnexpectedEOF))
	}
	return b, nil
}

// bodyCloser closes a streamed response and releases its timer.
type bodyCloser struct {
	io.Reader
	close func()
}

func (b *bodyCloser) Close() error { b.close(); return nil }

// openAt GETs url from byte offset on, retrying like get until a 2xx
// response starts, and returns its body with stall detection; read errors
// are not retried. An offset is asked for with a range request; a server
// that ignores it and sends the whole file has the first offset bytes
// skipped.
func (f *fetcher) openAt(ctx context.Context, url string, offset int64) (io.ReadCloser, error) {
	var out io.ReadCloser
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithCancel(ctx)
		req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
		if err != nil {
			cancel()
			return nil, permanent(fmt.Errorf("GET %s: %w", url, err))
		}
		if offset > 0 {
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
		}
		f.requests.Add(1)
		resp, err := f.client.Do(req)
		if err == nil && resp.StatusCode >= 200 && resp.StatusCode < 300 {
			var stalled atomic.Bool
			timer := time.AfterFunc(f.stall, func() { stalled.Store(true); cancel() })
			body := &stallReader{r: resp.Body, timer: timer, d: f.stall, stalled: &stalled, f: f}
			out = &bodyCloser{Reader: body, close: func() { timer.Stop(); resp.Body.Close(); cancel() }}
			if resp.StatusCode == http.StatusPartialContent && !rangeFrom(resp, offset) {
				out.Close()
				return nil, permanent(fmt.Errorf("GET %s: the server sent range %q, not from byte %d", url, resp.Header.Get("Content-Range"), offset))
			}
			if offset > 0 && resp.StatusCode != http.StatusPartialContent {
				if _, err := io.CopyN(io.Discard, out, offset); err != nil {
					out.Close()
					return nil, fmt.Errorf("GET %s: skip to byte %d: %w", url, offset, err)
				}
			}
			return out, nil
		}
		if err == nil {
			resp.Body.Close()
			switch {
			case resp.StatusCode == 403 || resp.StatusCode == 404 || resp.StatusCode == 410:
				cancel()
				return nil, fmt.Errorf("GET %s: %s: %w", url, resp.Status, errNotFound)
			case resp.StatusCode == 408 || resp.StatusCode == 429 || resp.StatusCode >= 500:
				err = fmt.Errorf("GET %s: server error %s", url, resp.Status)
			default:
				cancel()
				return nil, permanent(fmt.Errorf("GET %s: %s", url, resp.Status))
			}
		} else {
			err = fmt.Errorf("GET %s: %w", url, unwrapURLError(err))
		}
		cancel()
		if attempt >= f.retries || ctx.Err() != nil {
			return nil, err
		}
		f.retrying(url, attempt, err, f.backoff<<attempt)
		t := time.NewTimer(f.backoff << attempt)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// rangeFrom reports whether resp is a partial response starting at offset.
func rangeFrom(resp *http.Response, offset int64) bool {
	if resp.StatusCode != http.StatusPartialContent {
		return false
	}
	return strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", offset))
}

// isTLSVerifyError reports a certificate the client does not trust:
// retrying cannot help.
func isTLSVerifyError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
