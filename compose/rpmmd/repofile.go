// Package rpmmd reads package sources: yum.repos.d `.repo` files and the
// rpm-md metadata (repomd.xml, primary, filelists) they point at, over
// HTTP(S) or file://, with checksums verified and downloads cached by
// checksum.
package rpmmd

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// RepoConfig is one [section] of a .repo file.
type RepoConfig struct {
	ID           string
	Name         string
	BaseURL      string // the first baseurl; must end without '/'
	Enabled      bool
	GPGCheck     bool     // verify each package's OpenPGP header signature
	RepoGPGCheck bool     // verify repomd.xml against repomd.xml.asc
	GPGKeys      []string // URLs of armored public keys
	Source       string   // file:line of the section, for errors
}

// Vars are substituted in .repo values ($releasever, $basearch).
type Vars map[string]string

func (v Vars) expand(s string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	// Longest first, so $basearch is not eaten by a shorter $base.
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, k := range keys {
		s = strings.ReplaceAll(s, "${"+k+"}", v[k])
		s = strings.ReplaceAll(s, "$"+k, v[k])
	}
	return s
}

// ParseRepoFile reads a yum.repos.d style file.
func ParseRepoFile(path string, vars Vars) ([]RepoConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read repo file: %w", err)
	}
	defer f.Close()
	var out []RepoConfig
	var cur *RepoConfig
	sc := bufio.NewScanner(f)
	line := 0
	var lastKey string
	for sc.Scan() {
		line++
		raw := sc.Text()
		s := strings.TrimSpace(raw)
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		// Continuation lines (indented) extend multi-valued keys.
		if cur != nil && (raw[0] == ' ' || raw[0] == '\t') && lastKey != "" {
			if lastKey == "gpgkey" {
				cur.GPGKeys = append(cur.GPGKeys, splitList(vars.expand(s))...)
			}
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") || len(s) < 3 {
				return nil, fmt.Errorf("%s:%d: bad section header %q", path, line, s)
			}
			out = append(out, RepoConfig{ID: s[1 : len(s)-1], Enabled: true, Source: fmt.Sprintf("%s:%d", path, line)})
			cur = &out[len(out)-1]
			lastKey = ""
			continue
		}
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%s:%d: expected key=value, got %q", path, line, s)
		}
		if cur == nil {
			return nil, fmt.Errorf("%s:%d: key outside a [repo] section", path, line)
		}
		k, v = strings.TrimSpace(k), vars.expand(strings.TrimSpace(v))
		lastKey = k
		switch k {
		case "name":
			cur.Name = v
		case "baseurl":
			if urls := splitList(v); len(urls) > 0 {
				cur.BaseURL = strings.TrimRight(urls[0], "/")
			}
		case "enabled", "gpgcheck", "repo_gpgcheck":
			b, err := parseBool(v)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %s: %w", path, line, k, err)
			}
			switch k {
			case "enabled":
				cur.Enabled = b
			case "gpgcheck":
				cur.GPGCheck = b
			default:
				cur.RepoGPGCheck = b
			}
		case "gpgkey":
			cur.GPGKeys = append(cur.GPGKeys, splitList(v)...)
		default:
			// Other dnf options (metadata_expire, priority, ...) do not
			// change what gets installed here; accept them.
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	for _, r := range out {
		if r.Enabled && r.BaseURL == "" {
			return nil, fmt.Errorf("%s: repo %q has no baseurl (mirrorlist and metalink are not supported)", r.Source, r.ID)
		}
		if (r.GPGCheck || r.RepoGPGCheck) && len(r.GPGKeys) == 0 {
			return nil, fmt.Errorf("%s: repo %q has gpgcheck on but no gpgkey", r.Source, r.ID)
		}
	}
	return out, nil
}

// FindRepos loads the repositories with the given ids from the *.repo files
// in dirs. Every id must be found exactly once and be enabled.
func FindRepos(dirs []string, ids []string, vars Vars) ([]RepoConfig, error) {
	all := map[string]RepoConfig{}
	for _, d := range dirs {
		files, err := filepath.Glob(filepath.Join(d, "*.repo"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		for _, f := range files {
			rs, err := ParseRepoFile(f, vars)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				if prev, dup := all[r.ID]; dup && prev.Source != r.Source {
					return nil, fmt.Errorf("repo %q defined twice: %s and %s", r.ID, prev.Source, r.Source)
				}
				all[r.ID] = r
			}
		}
	}
	var out []RepoConfig
	for _, id := range ids {
		r, ok := all[id]
		if !ok {
			return nil, fmt.Errorf("repo %q not found in any .repo file in %s", id, strings.Join(dirs, ", "))
		}
		out = append(out, r)
	}
	return out, nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "yes", "true", "on":
		return true, nil
	case "0", "no", "false", "off":
		return false, nil
	}
	return false, fmt.Errorf("not a boolean: %q", s)
}
