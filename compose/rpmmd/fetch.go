package rpmmd

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Fetcher downloads files from http(s):// and file:// URLs. It is safe for
// concurrent use.
type Fetcher struct {
	Client *http.Client // nil: http.DefaultClient
}

// Open returns a reader of the resource at rawURL.
func (f *Fetcher) Open(ctx context.Context, rawURL string) (io.ReadCloser, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad url %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		fh, err := os.Open(u.Path)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
		}
		return fh, nil
	case "http", "https":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, err
		}
		c := f.Client
		if c == nil {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("fetch %s: %s", rawURL, resp.Status)
		}
		return resp.Body, nil
	}
	return nil, fmt.Errorf("fetch %s: unsupported scheme %q", rawURL, u.Scheme)
}

// ReadAll fetches a small resource whole, refusing more than limit bytes.
func (f *Fetcher) ReadAll(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	rc, err := f.Open(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("fetch %s: larger than %d bytes", rawURL, limit)
	}
	return b, nil
}

// Checksum is a typed digest as found in rpm-md ("sha256", hex).
type Checksum struct {
	Type string
	Hex  string
}

func (c Checksum) String() string { return c.Type + ":" + c.Hex }

// NewHash returns a hash for the checksum's type.
func (c Checksum) NewHash() (hash.Hash, error) {
	switch c.Type {
	case "sha256":
		return sha256.New(), nil
	case "sha512":
		return sha512.New(), nil
	case "sha384":
		return sha512.New384(), nil
	case "sha224":
		return sha256.New224(), nil
	case "sha", "sha1":
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("unsupported checksum type %q", c.Type)
}

// Download fetches rawURL into the cache at dir, named by its checksum, and
// returns the cached path. A cached file is reused only if it still
// matches. The file appears under its final name only once verified.
func (f *Fetcher) Download(ctx context.Context, rawURL string, sum Checksum, dir, suffix string) (string, error) {
	h, err := sum.NewHash()
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	if sum.Hex == "" || strings.ContainsAny(sum.Hex, "/.") {
		return "", fmt.Errorf("%s: bad checksum %q", rawURL, sum.Hex)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	final := filepath.Join(dir, sum.Type+"-"+strings.ToLower(sum.Hex)+suffix)
	if ok, _ := fileMatches(final, sum); ok {
		return final, nil
	}
	rc, err := f.Open(ctx, rawURL)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(dir, ".download-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", rawURL, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, sum.Hex) {
		return "", fmt.Errorf("download %s: checksum mismatch: expected %s, got %s:%s", rawURL, sum, sum.Type, got)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	return final, nil
}

func fileMatches(path string, sum Checksum) (bool, error) {
	fh, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	h, err := sum.NewHash()
	if err != nil {
		return false, err
	}
	if _, err := io.Copy(h, fh); err != nil {
		return false, err
	}
	return strings.EqualFold(hex.EncodeToString(h.Sum(nil)), sum.Hex), nil
}
