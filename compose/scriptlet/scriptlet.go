// Package scriptlet runs package scriptlets and treefile postprocess
// scripts inside bubblewrap against a tree: the tree is the whole
// filesystem, there is no network, the host is invisible, and /var, /tmp
// and /run are empty tmpfs mounts, so nothing a script does (even
// `rm -rf /`) reaches the host.
package scriptlet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/osupdate/os-update/compose/treefs"
)

// Script is one script to run.
type Script struct {
	Name string   // for messages: "%post of foo-1.0-1.noarch"
	Prog []string // interpreter and its arguments, e.g. ["/bin/sh"]
	Body string   // script text; empty runs Prog alone
	Args []string // passed after the script ($1 ...)
}

// Runner runs scripts with bwrap.
type Runner struct {
	Bwrap string    // bwrap binary; "" finds it in PATH
	Log   io.Writer // receives the output of successful scripts; may be nil
	// MaxOutput caps the output kept for an error message (default 64 KiB).
	MaxOutput int
	// ReadOnlyVar shows the tree's own /var, read-only, instead of an
	// empty tmpfs (package layering: scripts must not write state).
	ReadOnlyVar bool
	// ReadOnlyDev remounts the minimal /dev read-only, so that writing
	// to a device path that does not exist (/dev/sda) fails instead of
	// creating a file.
	ReadOnlyDev bool
}

const scriptPath = "/run/.osupdate-script"

// Error is a failed script, with its output.
type Error struct {
	Script string
	Err    error
	Output string
}

func (e *Error) Error() string {
	out := strings.TrimRight(e.Output, "\n")
	if out == "" {
		return fmt.Sprintf("%s failed: %v", e.Script, e.Err)
	}
	return fmt.Sprintf("%s failed: %v\n%s", e.Script, e.Err, out)
}

func (e *Error) Unwrap() error { return e.Err }

// Run runs s with tree as the root filesystem.
func (r *Runner) Run(ctx context.Context, tree string, s Script) error {
	if len(s.Prog) == 0 {
		return fmt.Errorf("%s: no interpreter", s.Name)
	}
	if !strings.HasPrefix(s.Prog[0], "/") {
		return fmt.Errorf("%s: interpreter %q is not an absolute path", s.Name, s.Prog[0])
	}
	if strings.HasPrefix(s.Prog[0], "<") {
		return fmt.Errorf("%s: built-in interpreter %s is not supported", s.Name, s.Prog[0])
	}
	root, err := treefs.Open(tree)
	if err != nil {
		return err
	}
	f, err := root.Open(s.Prog[0])
	root.Close()
	if err != nil {
		return fmt.Errorf("%s: interpreter %s not found in the tree", s.Name, s.Prog[0])
	}
	f.Close()

	bwrap := r.Bwrap
	if bwrap == "" {
		if bwrap, err = exec.LookPath("bwrap"); err != nil {
			return fmt.Errorf("%s: bubblewrap is needed to run scripts: %w", s.Name, err)
		}
	}
	args := []string{
		"--unshare-all", "--die-with-parent", "--new-session",
		"--bind", tree, "/",
		"--proc", "/proc", "--dev", "/dev",
	}
	if r.ReadOnlyDev {
		args = append(args, "--remount-ro", "/dev")
	}
	if r.ReadOnlyVar {
		args = append(args, "--ro-bind", tree+"/var", "/var")
	} else {
		args = append(args, "--tmpfs", "/var")
	}
	args = append(args,
		"--tmpfs", "/tmp", "--tmpfs", "/run",
		"--chdir", "/",
		"--clearenv",
		"--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin",
		"--setenv", "HOME", "/root",
		"--setenv", "LANG", "C.UTF-8",
		"--setenv", "container", "os-update-compose",
	)
	cmdArgs := append([]string(nil), s.Prog...)
	var extra []*os.File
	if s.Body != "" {
		// The script reaches the sandbox through an inherited pipe that
		// bwrap copies into a read-only file (fd 3).
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		defer pr.Close()
		go func() {
			pw.Write([]byte(s.Body))
			pw.Close()
		}()
		extra = append(extra, pr)
		args = append(args, "--ro-bind-data", "3", scriptPath)
		cmdArgs = append(cmdArgs, scriptPath)
	}
	cmdArgs = append(cmdArgs, s.Args...)
	args = append(args, "--")
	args = append(args, cmdArgs...)
	cmd := exec.CommandContext(ctx, bwrap, args...)
	cmd.ExtraFiles = extra
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	limit := r.MaxOutput
	if limit == 0 {
		limit = 64 << 10
	}
	out := &capped{limit: limit}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Stdin = nil
	err = cmd.Run()
	if err != nil {
		var ee *exec.ExitError
		if ctx.Err() != nil {
			err = ctx.Err()
		} else if errors.As(err, &ee) {
			err = fmt.Errorf("exit status %d", ee.ExitCode())
		}
		return &Error{Script: s.Name, Err: err, Output: out.String()}
	}
	if r.Log != nil && out.buf.Len() > 0 {
		fmt.Fprintf(r.Log, "%s:\n%s", s.Name, out.String())
	}
	return nil
}

// capped keeps the last limit bytes written.
type capped struct {
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (c *capped) Write(p []byte) (int, error) {
	c.buf.Write(p)
	if over := c.buf.Len() - c.limit; over > 0 {
		c.buf.Next(over)
		c.cut = true
	}
	return len(p), nil
}

func (c *capped) String() string {
	if c.cut {
		return "[...]\n" + c.buf.String()
	}
	return c.buf.String()
}
