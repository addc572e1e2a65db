// Package osrelease reads os-release files (os-release(5)) with the rules
// libostree applies when it titles boot entries, so that every part of
// os-update reads the same name and ID from a tree:
//
//   - usr/lib/os-release is read, and etc/os-release only when it is
//     missing (a first file without the key does not fall through);
//   - a line is KEY=VALUE; surrounding white space is ignored (systemd),
//     empty lines and lines starting with # are skipped;
//   - the value is unquoted like a shell word (g_shell_unquote): '...'
//     is literal, inside "..." a backslash escapes only $ ` " \ and a
//     newline, outside quotes it escapes any character; a value that does
//     not unquote (an unterminated quote) is skipped;
//   - a later assignment of a key replaces an earlier one.
package osrelease

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// Paths are where a deployed tree keeps os-release, in the order they are
// read. In a commit, /etc is stored as /usr/etc (see CommitPaths).
var Paths = []string{"usr/lib/os-release", "etc/os-release"}

// CommitPaths are Paths as they are stored in a commit: /etc is usr/etc,
// or etc in a tree not yet converted.
var CommitPaths = []string{"usr/lib/os-release", "usr/etc/os-release", "etc/os-release"}

// ErrNotFound is returned by Read when no path exists.
var ErrNotFound = errors.New("no usr/lib/os-release or etc/os-release")

// Read returns the parsed first file of paths that exists; readFile
// returns an error wrapping fs.ErrNotExist for a missing one (isNotExist
// tells which errors mean missing).
func Read(paths []string, readFile func(string) ([]byte, error), isNotExist func(error) bool) (map[string]string, error) {
	for _, p := range paths {
		data, err := readFile(p)
		if err == nil {
			return Parse(data), nil
		}
		if !isNotExist(err) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil, ErrNotFound
}

// Parse reads KEY=VALUE lines.
func Parse(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		if u, ok := unquote(v); ok {
			out[k] = u
		}
	}
	return out
}

// Name is what a boot entry is titled with: PRETTY_NAME, else ID.
func Name(vals map[string]string) (string, error) {
	if v := vals["PRETTY_NAME"]; v != "" {
		return v, nil
	}
	if v := vals["ID"]; v != "" {
		return v, nil
	}
	return "", errors.New("os-release has neither PRETTY_NAME nor ID")
}

// unquote undoes shell quoting; ok is false for an unterminated quote.
func unquote(v string) (string, bool) {
	var b strings.Builder
	var quote byte
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote != 0 && c == quote:
			quote = 0
		case quote == '\'':
			b.WriteByte(c)
		case c == '\\' && i+1 < len(v) && (quote == 0 || strings.IndexByte("$`\"\\\n", v[i+1]) >= 0):
			i++
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), quote == 0
}
