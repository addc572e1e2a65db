// Package fleetlock is a client of the FleetLock protocol (the HTTP
// protocol Zincati speaks to servers such as airlock): a machine takes a
// reboot slot of its group before it reboots into an update (POST
// /v1/pre-reboot) and gives it back once it booted well (POST
// /v1/steady-state). Both operations are recursive on the server, so
// retrying either is always safe.
package fleetlock

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"
)

// DefaultGroup is the reboot group when none is configured (as Zincati's).
const DefaultGroup = "default"

var groupRE = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Client talks to one FleetLock server.
type Client struct {
	base  *url.URL
	group string
	id    string
	http  *http.Client
}

// New checks the server URL (http or https), the group (letters, digits,
// dots and dashes) and the client id (not empty).
func New(serverURL, group, id string) (*Client, error) {
	u, err := url.Parse(serverURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fleetlock URL %q: want http://HOST[:PORT][/PATH] or https://...", serverURL)
	}
	if group == "" {
		group = DefaultGroup
	}
	if !groupRE.MatchString(group) {
		return nil, fmt.Errorf("fleetlock group %q: only letters, digits, '.' and '-' are allowed", group)
	}
	if strings.TrimSpace(id) == "" {
		return nil, fmt.Errorf("fleetlock client id is empty")
	}
	return &Client{base: u, group: group, id: id, http: &http.Client{Timeout: 30 * time.Second}}, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base.String() }

// Group and ID are what the client sends.
func (c *Client) Group() string { return c.group }
func (c *Client) ID() string    { return c.id }

// Error is a refusal by the server: any status but 200, with the error
// object the protocol defines when the server sent one.
type Error struct {
	Op     string // "pre-reboot" or "steady-state"
	Status int
	Kind   string // e.g. "failed_lock_semaphore_full"; "" if the body was no error object
	Value  string
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("fleetlock %s: HTTP %d", e.Op, e.Status)
	if e.Kind != "" {
		msg += ": " + e.Kind
	}
	if e.Value != "" {
		msg += ": " + e.Value
	}
	return msg
}

// Lock takes a reboot slot (RecursiveLock): nil means the slot is held.
func (c *Client) Lock(ctx context.Context) error { return c.post(ctx, "pre-reboot") }

// Unlock releases the slot if this client holds it (UnlockIfHeld).
func (c *Client) Unlock(ctx context.Context) error { return c.post(ctx, "steady-state") }

func (c *Client) post(ctx context.Context, op string) error {
	body, err := json.Marshal(map[string]any{"client_params": map[string]string{"id": c.id, "group": c.group}})
	if err != nil {
		return err
	}
	endpoint := c.base.JoinPath("v1", op)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleetlock %s: %w", op, err)
	}
	req.Header.Set("fleet-lock-protocol", "true")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("fleetlock %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	fe := &Error{Op: op, Status: resp.StatusCode}
	var obj struct{ Kind, Value string }
	if json.Unmarshal(data, &obj) == nil {
		fe.Kind, fe.Value = obj.Kind, obj.Value
	}
	return fe
}

// appID keys the machine-specific client id, so that the id sent to the
// server does not reveal /etc/machine-id (os-update's own application id).
var appID = [16]byte{0x90, 0x2f, 0xfe, 0xff, 0x3c, 0x17, 0x45, 0x60, 0xb4, 0x57, 0xfc, 0xb4, 0x1e, 0xe6, 0x1b, 0x40}

// MachineID derives the client id from a machine id (32 hex digits, as
// in /etc/machine-id) the way systemd derives application-specific ids:
// HMAC-SHA256 keyed with the machine id over the application id, cut to
// 128 bits and marked as a version 4 UUID.
func MachineID(machineID string) (string, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(machineID))
	if err != nil || len(raw) != 16 {
		return "", fmt.Errorf("machine id %q: want 32 hex digits", strings.TrimSpace(machineID))
	}
	m := hmac.New(sha256.New, raw)
	m.Write(appID[:])
	id := m.Sum(nil)[:16]
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return hex.EncodeToString(id), nil
}

// MachineIDFromFile reads a machine-id file and derives the client id.
func MachineIDFromFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("fleetlock client id: %w", err)
	}
	id, err := MachineID(string(b))
	if err != nil {
		return "", fmt.Errorf("fleetlock client id from %s: %w", path, err)
	}
	return id, nil
}
