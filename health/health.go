// Package health runs the boot health checks of a host: the executables
// of the health.d directories and the required-units list of health.conf.
// It only reports a verdict; what to do about it (mark the boot good, roll
// back) is the daemon's decision (see Decide).
//
// Layout, as systemd drop-ins: /usr/lib/os-update/health.d holds the
// checks the OS ships, /etc/os-update/health.d the administrator's; a file
// in /etc replaces the one of the same name in /usr, and a link to
// /dev/null there disables it. Checks run one at a time in lexical order
// of their names, each with a timeout; every check runs even after one
// failed, so the report is complete.
package health

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default locations on a host, relative to its root.
const (
	UsrDir     = "usr/lib/os-update/health.d"
	EtcDir     = "etc/os-update/health.d"
	UsrConfig  = "usr/lib/os-update/health.conf"
	EtcConfig  = "etc/os-update/health.conf"
	systemdRun = "run/systemd/system" // exists when systemd is pid 1 (sd_booted)
)

// DefaultTimeout bounds one check script unless health.conf says otherwise.
const DefaultTimeout = 5 * time.Minute

// outputTail is how many lines of a failing check's output the reason
// quotes.
const outputTail = 5

// Config says where the checks are and how to run them.
type Config struct {
	// Dirs are health.d directories in increasing priority: an entry of
	// a later directory replaces the same name of an earlier one.
	Dirs []string
	// ConfigFiles are health.conf files in increasing priority (a key of
	// a later file replaces the earlier value); missing files are fine.
	ConfigFiles []string
	// Timeout bounds each script (0: health.conf's script-timeout, else
	// DefaultTimeout).
	Timeout time.Duration
	// SystemdDir is the directory whose existence says systemd runs
	// (default /run/systemd/system); Systemctl the systemctl to ask
	// (default "systemctl" from PATH).
	SystemdDir string
	Systemctl  string
}

// ForRoot is the configuration of a host whose root is root ("/" when
// booted).
func ForRoot(root string) Config {
	return Config{
		Dirs:        []string{filepath.Join(root, UsrDir), filepath.Join(root, EtcDir)},
		ConfigFiles: []string{filepath.Join(root, UsrConfig), filepath.Join(root, EtcConfig)},
		SystemdDir:  filepath.Join(root, systemdRun),
	}
}

// Check is the outcome of one script or required unit.
type Check struct {
	Name     string        `json:"name"` // script file name, or the unit name
	Kind     string        `json:"kind"` // "script" or "unit"
	Path     string        `json:"path,omitempty"`
	OK       bool          `json:"ok"`
	ExitCode int           `json:"exit-code"` // scripts; -1 when killed or not started
	Problem  string        `json:"problem,omitempty"`
	Output   string        `json:"output,omitempty"` // last lines of stdout and stderr
	Duration time.Duration `json:"duration"`
}

// Report is what Run found.
type Report struct {
	Healthy bool
	// Reason names the first failed check and why ("" when healthy); with
	// more failures it says how many.
	Reason string
	Checks []Check
	// Skipped names entries that are not checks (not executable, masked).
	Skipped []string
}

// Run runs every check and returns the report. An error means the checks
// could not be run at all (an unreadable directory or health.conf), which
// the caller must treat as a failed check too.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	conf, err := readConfig(cfg.ConfigFiles)
	if err != nil {
		return nil, err
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = conf.timeout
	}
	scripts, skipped, err := collect(cfg.Dirs)
	if err != nil {
		return nil, err
	}
	rep := &Report{Skipped: skipped}
	for _, s := range scripts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rep.Checks = append(rep.Checks, runScript(ctx, s.name, s.path, timeout))
	}
	for _, u := range conf.units {
		rep.Checks = append(rep.Checks, checkUnit(ctx, cfg, u))
	}
	var failed []Check
	for _, c := range rep.Checks {
		if !c.OK {
			failed = append(failed, c)
		}
	}
	rep.Healthy = len(failed) == 0
	if !rep.Healthy {
		rep.Reason = failed[0].describe()
		if len(failed) > 1 {
			rep.Reason += fmt.Sprintf(" (and %d more failed check(s))", len(failed)-1)
		}
	}
	return rep, nil
}

// describe is a failed check in one line.
func (c Check) describe() string {
	what := c.Name
	if c.Kind == "unit" {
		what = "required unit " + c.Name
	}
	s := what + " " + c.Problem
	if c.Output != "" {
		s += ": " + strings.ReplaceAll(c.Output, "\n", " | ")
	}
	return s
}

type script struct{ name, path string }

// collect merges the directories by name (later ones win) and returns the
// executables in lexical order of their names.
func collect(dirs []string) ([]script, []string, error) {
	byName := map[string]string{}
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("health checks: %w", err)
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				continue
			}
			byName[e.Name()] = filepath.Join(dir, e.Name())
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []script
	var skipped []string
	for _, n := range names {
		p := byName[n]
		if target, err := os.Readlink(p); err == nil && target == "/dev/null" {
			skipped = append(skipped, p+" (masked)")
			continue
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			skipped = append(skipped, fmt.Sprintf("%s (%v)", p, err))
		case !fi.Mode().IsRegular():
			skipped = append(skipped, p+" (not a regular file)")
		case fi.Mode().Perm()&0o111 == 0:
			skipped = append(skipped, p+" (not executable)")
		default:
			out = append(out, script{n, p})
		}
	}
	return out, skipped, nil
}

// runScript runs one check in its own process group, so that a timeout
// kills whatever it started too.
func runScript(ctx context.Context, name, path string, timeout time.Duration) Check {
	c := Check{Name: name, Kind: "script", Path: path, ExitCode: -1}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Output pipes held open by a killed script's orphans must not hang
	// the check.
	cmd.WaitDelay = 2 * time.Second
	out := &tailBuffer{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	c.Duration = time.Since(start).Round(time.Millisecond)
	c.Output = out.lastLines(outputTail)
	var exit *exec.ExitError
	switch {
	case err == nil:
		c.OK, c.ExitCode = true, 0
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		c.Problem = fmt.Sprintf("timed out after %s (killed)", timeout)
	case ctx.Err() != nil:
		c.Problem = "was cancelled"
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		c.ExitCode = exit.ExitCode()
		c.Problem = fmt.Sprintf("exited %d", c.ExitCode)
	case errors.As(err, &exit):
		c.Problem = fmt.Sprintf("was killed (%s)", exit.ProcessState)
	default:
		c.Problem = fmt.Sprintf("could not run: %v", err)
	}
	return c
}

// checkUnit asks systemd whether a required unit is active. Without
// systemd the unit cannot be checked, which fails the check: a requirement
// nobody can confirm is not met.
func checkUnit(ctx context.Context, cfg Config, unit string) Check {
	c := Check{Name: unit, Kind: "unit", ExitCode: -1}
	start := time.Now()
	defer func() { c.Duration = time.Since(start).Round(time.Millisecond) }()
	sdDir := cfg.SystemdDir
	if sdDir == "" {
		sdDir = "/" + systemdRun
	}
	if _, err := os.Stat(sdDir); err != nil {
		c.Problem = fmt.Sprintf("cannot be checked: systemd is not running (no %s)", sdDir)
		return c
	}
	systemctl := cfg.Systemctl
	if systemctl == "" {
		systemctl = "systemctl"
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, systemctl, "is-active", unit).Output()
	state := strings.TrimSpace(string(out))
	var exit *exec.ExitError
	switch {
	case err == nil && state == "active":
		c.OK, c.ExitCode = true, 0
	case err == nil || errors.As(err, &exit):
		if exit != nil {
			c.ExitCode = exit.ExitCode()
		}
		if state == "" {
			state = "unknown"
		}
		c.Problem = "is " + state
	default:
		c.Problem = fmt.Sprintf("cannot be checked: %s: %v", systemctl, err)
	}
	return c
}

// conf is health.conf: lines of KEY = VALUE, # comments.
//
//	required-units = sshd.service chronyd.service
//	script-timeout = 2m
//
// required-units may be repeated (the lists add up, across files too);
// script-timeout of a later file wins.
type conf struct {
	units   []string
	timeout time.Duration
}

func readConfig(files []string) (conf, error) {
	c := conf{timeout: DefaultTimeout}
	seen := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return c, fmt.Errorf("health configuration: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, ok := strings.Cut(line, "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok {
				return c, fmt.Errorf("%s:%d: want KEY = VALUE, got %q", f, n, line)
			}
			switch k {
			case "required-units":
				for _, u := range strings.Fields(v) {
					if !seen[u] {
						seen[u] = true
						c.units = append(c.units, u)
					}
				}
			case "script-timeout":
				d, err := time.ParseDuration(v)
				if err != nil || d <= 0 {
					return c, fmt.Errorf("%s:%d: script-timeout %q is not a positive duration (like 90s or 5m)", f, n, v)
				}
				c.timeout = d
			default:
				return c, fmt.Errorf("%s:%d: unknown key %q (known: required-units, script-timeout)", f, n, k)
			}
		}
	}
	return c, nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimRight(string(t.buf), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
