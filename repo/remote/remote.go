// Package remote manages a repository's remotes in libostree's key-file
// format: `[remote "NAME"]` groups in the repository config, and files
// remotes.d/NAME.conf holding the same group (in the repository, or in
// extra directories such as /etc/ostree/remotes.d).
//
// Signature verification is on by default: a remote verifies commits
// with OpenPGP unless it says gpg-verify=false. A remote that does not
// set gpg-verify-summary verifies its summary when it has a GPG key to
// verify with (stricter than libostree, whose default is off), and
// otherwise follows libostree: the summary is not verified, and pulls say
// so (see SummaryUnverified).
package remote

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/keyfile"
	"github.com/osupdate/os-update/repo/sign"
)

// Remote is one configured remote.
type Remote struct {
	Name       string
	URL        string
	ContentURL string // "" means URL

	GPGVerify        bool
	GPGVerifySummary bool
	// GPGVerifySummaryUnset: the configuration does not set
	// gpg-verify-summary, so Verifiers decides by the keys there are.
	GPGVerifySummaryUnset bool
	SignVerify            bool // ed25519
	SignVerifySummary     bool
	GPGKeyPath            []string // files or directories of public keys
	Ed25519Keys           []string // base64 public keys (verification-ed25519-key)
	Ed25519File           string   // verification-ed25519-file

	Branches []string

	TLSPermissive  bool
	TLSCAPath      string
	TLSClientCert  string
	TLSClientKey   string
	CollectionID   string
	File           string // where it is defined: the repo config or a .conf
	UnknownOptions map[string]string
}

// Group returns the key-file group name of a remote.
func Group(name string) string { return `remote "` + name + `"` }

func nameOfGroup(g string) (string, bool) {
	if !strings.HasPrefix(g, `remote "`) || !strings.HasSuffix(g, `"`) || len(g) < len(`remote ""`)+1 {
		return "", false
	}
	return g[len(`remote "`) : len(g)-1], true
}

// ValidateName checks a remote name: non-empty, no '/', ':', '"',
// whitespace or leading '.', since it becomes a directory and ref prefix.
func ValidateName(name string) error {
	if name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/:\" \t\n[]") {
		return fmt.Errorf("invalid remote name %q", name)
	}
	return nil
}

// known lists options this package interprets.
var known = map[string]bool{
	"url": true, "contenturl": true, "gpg-verify": true, "gpg-verify-summary": true,
	"sign-verify": true, "sign-verify-summary": true, "gpgkeypath": true,
	"verification-ed25519-key": true, "verification-ed25519-file": true, "branches": true,
	"tls-permissive": true, "tls-ca-path": true, "tls-client-cert-path": true,
	"tls-client-key-path": true, "collection-id": true,
}

func parse(name string, kf *keyfile.File, group, file string) (*Remote, error) {
	r := &Remote{Name: name, File: file, UnknownOptions: map[string]string{}}
	r.URL, _ = kf.Get(group, "url")
	if r.URL == "" {
		return nil, fmt.Errorf("remote %q (%s): no url", name, file)
	}
	r.ContentURL = kf.String(group, "contenturl", "")
	var err error
	b := func(key string, def bool) bool {
		if err != nil {
			return def
		}
		var v bool
		v, err = kf.Bool(group, key, def)
		return v
	}
	r.GPGVerify = b("gpg-verify", true)
	r.GPGVerifySummary = b("gpg-verify-summary", true)
	_, set := kf.Get(group, "gpg-verify-summary")
	r.GPGVerifySummaryUnset = !set
	r.SignVerify = b("sign-verify", false)
	r.SignVerifySummary = b("sign-verify-summary", false)
	r.TLSPermissive = b("tls-permissive", false)
	if err != nil {
		return nil, fmt.Errorf("remote %q (%s): %w", name, file, err)
	}
	r.GPGKeyPath = kf.List(group, "gpgkeypath")
	if k := kf.String(group, "verification-ed25519-key", ""); k != "" {
		r.Ed25519Keys = []string{k}
	}
	r.Ed25519File = kf.String(group, "verification-ed25519-file", "")
	r.Branches = kf.List(group, "branches")
	r.TLSCAPath = kf.String(group, "tls-ca-path", "")
	r.TLSClientCert = kf.String(group, "tls-client-cert-path", "")
	r.TLSClientKey = kf.String(group, "tls-client-key-path", "")
	r.CollectionID = kf.String(group, "collection-id", "")
	for _, k := range kf.Keys(group) {
		if !known[k] {
			r.UnknownOptions[k], _ = kf.Get(group, k)
		}
	}
	if err := checkURL(r.URL); err != nil {
		return nil, fmt.Errorf("remote %q: %w", name, err)
	}
	if r.ContentURL != "" {
		if err := checkURL(r.ContentURL); err != nil {
			return nil, fmt.Errorf("remote %q: contenturl: %w", name, err)
		}
	}
	return r, nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %w", s, err)
	}
	if u.Scheme == "file" {
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return fmt.Errorf("url %q: a file URL needs an absolute path and no host (file:///PATH)", s)
		}
		return nil
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: only http, https and file are supported", s)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: no host", s)
	}
	return nil
}

// write puts r into kf's group, replacing it.
func (r *Remote) write(kf *keyfile.File) {
	g := Group(r.Name)
	kf.DeleteGroup(g)
	kf.Set(g, "url", r.URL)
	if r.ContentURL != "" {
		kf.Set(g, "contenturl", r.ContentURL)
	}
	kf.SetBool(g, "gpg-verify", r.GPGVerify)
	if !r.GPGVerifySummaryUnset {
		kf.SetBool(g, "gpg-verify-summary", r.GPGVerifySummary)
	}
	if r.SignVerify || r.SignVerifySummary {
		kf.SetBool(g, "sign-verify", r.SignVerify)
		kf.SetBool(g, "sign-verify-summary", r.SignVerifySummary)
	}
	if len(r.GPGKeyPath) > 0 {
		kf.SetList(g, "gpgkeypath", r.GPGKeyPath)
	}
	if len(r.Ed25519Keys) > 0 {
		kf.Set(g, "verification-ed25519-key", r.Ed25519Keys[0])
	}
	if r.Ed25519File != "" {
		kf.Set(g, "verification-ed25519-file", r.Ed25519File)
	}
	if len(r.Branches) > 0 {
		kf.SetList(g, "branches", r.Branches)
	}
	if r.TLSPermissive {
		kf.SetBool(g, "tls-permissive", true)
	}
	for k, v := range map[string]string{"tls-ca-path": r.TLSCAPath, "tls-client-cert-path": r.TLSClientCert, "tls-client-key-path": r.TLSClientKey, "collection-id": r.CollectionID} {
		if v != "" {
			kf.Set(g, k, v)
		}
	}
	keys := make([]string, 0, len(r.UnknownOptions))
	for k := range r.UnknownOptions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kf.Set(g, k, r.UnknownOptions[k])
	}
}

// Store finds and edits the remotes of one repository.
type Store struct {
	Repo *repo.Repo
	// ExtraDirs are further remotes.d directories to read (read-only
	// here unless passed as the directory of an Add).
	ExtraDirs []string
}

func (s *Store) dirs() []string {
	return append([]string{filepath.Join(s.Repo.Path(), "remotes.d")}, s.ExtraDirs...)
}

// List returns every remote, sorted by name. A name defined twice is an
// error, as it is for libostree.
func (s *Store) List() ([]*Remote, error) {
	byName := map[string]*Remote{}
	add := func(r *Remote) error {
		if old, ok := byName[r.Name]; ok {
			return fmt.Errorf("remote %q defined twice (%s and %s)", r.Name, old.File, r.File)
		}
		byName[r.Name] = r
		return nil
	}
	cfg := s.Repo.Config()
	for _, g := range cfg.Groups() {
		name, ok := nameOfGroup(g)
		if !ok {
			continue
		}
		r, err := parse(name, cfg, g, filepath.Join(s.Repo.Path(), "config"))
		if err != nil {
			return nil, err
		}
		if err := add(r); err != nil {
			return nil, err
		}
	}
	for _, dir := range s.dirs() {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("remotes: %w", err)
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".conf") {
				continue
			}
			p := filepath.Join(dir, e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("remotes: %w", err)
			}
			kf, err := keyfile.ParseBytes(data)
			if err != nil {
				return nil, fmt.Errorf("remotes: %s: %w", p, err)
			}
			for _, g := range kf.Groups() {
				name, ok := nameOfGroup(g)
				if !ok {
					continue
				}
				r, err := parse(name, kf, g, p)
				if err != nil {
					return nil, err
				}
				if err := add(r); err != nil {
					return nil, err
				}
			}
		}
	}
	out := make([]*Remote, 0, len(byName))
	for _, r := range byName {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ErrNotFound is wrapped when a remote does not exist.
var ErrNotFound = errors.New("no such remote")

// Get returns one remote.
func (s *Store) Get(name string) (*Remote, error) {
	all, err := s.List()
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.Name == name {
			return r, nil
		}
	}
	return nil, fmt.Errorf("remote %q: %w", name, ErrNotFound)
}

// AddOptions controls Add.
type AddOptions struct {
	// Dir, if set, writes Dir/NAME.conf instead of the repository config.
	Dir string
	// IfNotExists makes an existing remote of the same name a no-op.
	IfNotExists bool
	// GPGImport are key files whose public keys are stored in the
	// repository's NAME.trustedkeys.gpg keyring.
	GPGImport []string
}

// Add defines a new remote.
func (s *Store) Add(r *Remote, opts AddOptions) error {
	if err := ValidateName(r.Name); err != nil {
		return err
	}
	if err := checkURL(r.URL); err != nil {
		return fmt.Errorf("remote %q: %w", r.Name, err)
	}
	if _, err := s.Get(r.Name); err == nil {
		if opts.IfNotExists {
			return nil
		}
		return fmt.Errorf("remote %q already exists", r.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if len(opts.GPGImport) > 0 {
		if err := s.importKeys(r.Name, opts.GPGImport); err != nil {
			return err
		}
	}
	if opts.Dir != "" {
		kf := keyfile.New()
		r.write(kf)
		if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
			return fmt.Errorf("remote %q: %w", r.Name, err)
		}
		p := filepath.Join(opts.Dir, r.Name+".conf")
		if err := writeAtomic(p, kf.Bytes()); err != nil {
			return fmt.Errorf("remote %q: %w", r.Name, err)
		}
		return nil
	}
	r.write(s.Repo.Config())
	if err := s.Repo.WriteConfig(); err != nil {
		return fmt.Errorf("remote %q: %w", r.Name, err)
	}
	return nil
}

// Delete removes a remote from wherever it is defined, with its keyring.
func (s *Store) Delete(name string, ifExists bool) error {
	r, err := s.Get(name)
	if err != nil {
		if ifExists && errors.Is(err, ErrNotFound) {
			return nil
		}
		return err
	}
	if r.File == filepath.Join(s.Repo.Path(), "config") {
		s.Repo.Config().DeleteGroup(Group(name))
		if err := s.Repo.WriteConfig(); err != nil {
			return fmt.Errorf("remote %q: %w", name, err)
		}
	} else {
		data, err := os.ReadFile(r.File)
		if err != nil {
			return err
		}
		kf, err := keyfile.ParseBytes(data)
		if err != nil {
			return err
		}
		kf.DeleteGroup(Group(name))
		if len(kf.Groups()) == 0 {
			err = os.Remove(r.File)
		} else {
			err = writeAtomic(r.File, kf.Bytes())
		}
		if err != nil {
			return fmt.Errorf("remote %q: %w", name, err)
		}
	}
	err = os.Remove(s.keyringPath(name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (s *Store) keyringPath(name string) string {
	return filepath.Join(s.Repo.Path(), name+".trustedkeys.gpg")
}

func (s *Store) importKeys(name string, files []string) error {
	kr, err := sign.LoadKeyring(files...)
	if err != nil {
		return fmt.Errorf("remote %q: gpg-import: %w", name, err)
	}
	if len(kr) == 0 {
		return fmt.Errorf("remote %q: gpg-import: no keys in %s", name, strings.Join(files, ", "))
	}
	var buf bytes.Buffer
	if old, err := os.ReadFile(s.keyringPath(name)); err == nil {
		buf.Write(old)
	}
	for _, e := range kr {
		if err := e.Serialize(&buf); err != nil {
			return fmt.Errorf("remote %q: gpg-import: %w", name, err)
		}
	}
	return writeAtomic(s.keyringPath(name), buf.Bytes())
}

// GPGKeyring returns the keys trusted for a remote: its imported keyring
// (NAME.trustedkeys.gpg), its gpgkeypath entries and, when it has neither,
// the system directories /etc/ostree/trusted.gpg.d and
// /usr/share/ostree/trusted.gpg.d.
func (s *Store) GPGKeyring(r *Remote) (openpgp.EntityList, error) {
	var paths []string
	if _, err := os.Stat(s.keyringPath(r.Name)); err == nil {
		paths = append(paths, s.keyringPath(r.Name))
	}
	paths = append(paths, r.GPGKeyPath...)
	if len(paths) == 0 {
		for _, d := range []string{"/etc/ostree/trusted.gpg.d", "/usr/share/ostree/trusted.gpg.d"} {
			if _, err := os.Stat(d); err == nil {
				paths = append(paths, d)
			}
		}
	}
	if len(paths) == 0 {
		return nil, nil
	}
	kr, err := sign.LoadKeyring(paths...)
	if err != nil {
		return nil, fmt.Errorf("remote %q: %w", r.Name, err)
	}
	return kr, nil
}

// Ed25519Keys returns the trusted and revoked ed25519 keys for a remote:
// verification-ed25519-key, verification-ed25519-file, or else the system
// files trusted.ed25519{,.d} (and revoked.ed25519{,.d}) under /etc/ostree
// and /usr/share/ostree.
func (s *Store) Ed25519Keys(r *Remote) (trusted, revoked []ed25519.PublicKey, err error) {
	for _, k := range r.Ed25519Keys {
		pk, err := sign.ParseEd25519PublicKey(k)
		if err != nil {
			return nil, nil, fmt.Errorf("remote %q: %w", r.Name, err)
		}
		trusted = append(trusted, pk)
	}
	if r.Ed25519File != "" {
		ks, err := sign.LoadEd25519PublicKeys(r.Ed25519File)
		if err != nil {
			return nil, nil, fmt.Errorf("remote %q: %w", r.Name, err)
		}
		trusted = append(trusted, ks...)
	}
	existing := func(names ...string) []string {
		var out []string
		for _, base := range []string{"/etc/ostree", "/usr/share/ostree"} {
			for _, n := range names {
				if _, err := os.Stat(filepath.Join(base, n)); err == nil {
					out = append(out, filepath.Join(base, n))
				}
			}
		}
		return out
	}
	if len(trusted) == 0 {
		if p := existing("trusted.ed25519", "trusted.ed25519.d"); len(p) > 0 {
			if trusted, err = sign.LoadEd25519PublicKeys(p...); err != nil {
				return nil, nil, fmt.Errorf("remote %q: %w", r.Name, err)
			}
		}
	}
	if p := existing("revoked.ed25519", "revoked.ed25519.d"); len(p) > 0 {
		if revoked, err = sign.LoadEd25519PublicKeys(p...); err != nil {
			return nil, nil, fmt.Errorf("remote %q: %w", r.Name, err)
		}
	}
	return trusted, revoked, nil
}

// Verifiers returns the verifiers a remote requires for commits (summary
// false) or for its summary (summary true).
func (s *Store) Verifiers(r *Remote, summary bool) ([]sign.Verifier, error) {
	var vs []sign.Verifier
	gpgOn, edOn := r.GPGVerify, r.SignVerify
	if summary {
		gpgOn, edOn = r.GPGVerifySummary, r.SignVerifySummary
	}
	if gpgOn {
		kr, err := s.GPGKeyring(r)
		if err != nil {
			return nil, err
		}
		// An unset gpg-verify-summary with no key to verify with is
		// libostree's default: off.
		if !(summary && r.GPGVerifySummaryUnset && len(kr) == 0) {
			vs = append(vs, &sign.GPGVerifier{Keyring: kr})
		}
	}
	if edOn {
		trusted, revoked, err := s.Ed25519Keys(r)
		if err != nil {
			return nil, err
		}
		vs = append(vs, &sign.Ed25519Verifier{Trusted: trusted, Revoked: revoked})
	}
	return vs, nil
}

// SummaryUnverified explains, for a remote whose summary Verifiers does
// not verify because gpg-verify-summary is unset and there is no key, that
// the summary is unverified and what to set; "" otherwise.
func (s *Store) SummaryUnverified(r *Remote) string {
	if !r.GPGVerifySummaryUnset || !r.GPGVerifySummary || r.SignVerifySummary {
		return ""
	}
	if kr, err := s.GPGKeyring(r); err != nil || len(kr) > 0 {
		return ""
	}
	return fmt.Sprintf("remote %q: the summary is not verified: the remote has no GPG key and does not set gpg-verify-summary (libostree's default); "+
		"import the publisher's key (ostree remote gpg-import, os-update repo remote add --gpg-import, or gpgkeypath=) to verify it", r.Name)
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// BadBoolError reports a boolean option whose value the caller's parser
// rejected; callers word it their own way (libostree's key-file message,
// or a command-line usage error).
type BadBoolError struct {
	Key, Value string
	Err        error
}

func (e *BadBoolError) Error() string {
	return fmt.Sprintf("option %s: not a boolean: %q", e.Key, e.Value)
}

func (e *BadBoolError) Unwrap() error { return e.Err }

// SetOption sets one configuration option by its key-file name, as
// `--set KEY=VALUE` does. Boolean options are read with parseBool
// (strconv.ParseBool if nil), since the ostree-compatible CLI and our own
// accept different spellings; a rejected value gives a *BadBoolError.
// List options are ';'-separated; keys this package does not interpret
// are kept in UnknownOptions.
func (r *Remote) SetOption(key, value string, parseBool func(string) (bool, error)) error {
	if parseBool == nil {
		parseBool = strconv.ParseBool
	}
	b := func(p *bool) error {
		x, err := parseBool(value)
		if err != nil {
			return &BadBoolError{Key: key, Value: value, Err: err}
		}
		*p = x
		return nil
	}
	list := func() []string {
		var out []string
		for _, s := range strings.Split(value, ";") {
			if s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	switch key {
	case "gpg-verify":
		return b(&r.GPGVerify)
	case "gpg-verify-summary":
		return b(&r.GPGVerifySummary)
	case "sign-verify":
		return b(&r.SignVerify)
	case "sign-verify-summary":
		return b(&r.SignVerifySummary)
	case "tls-permissive":
		return b(&r.TLSPermissive)
	case "gpgkeypath":
		r.GPGKeyPath = list()
	case "branches":
		r.Branches = list()
	case "contenturl":
		r.ContentURL = value
	case "verification-ed25519-key":
		r.Ed25519Keys = []string{value}
	case "verification-ed25519-file":
		r.Ed25519File = value
	case "tls-ca-path":
		r.TLSCAPath = value
	case "tls-client-cert-path":
		r.TLSClientCert = value
	case "tls-client-key-path":
		r.TLSClientKey = value
	case "collection-id":
		r.CollectionID = value
	case "url":
		r.URL = value
	default:
		if r.UnknownOptions == nil {
			r.UnknownOptions = map[string]string{}
		}
		r.UnknownOptions[key] = value
	}
	return nil
}
