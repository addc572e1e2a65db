package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/internal/progress"
	"github.com/osupdate/os-update/repo/pull"
	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/repo/serve"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

// repoSyncCommands are the repo subcommands for signing, summaries,
// remotes, serving and pulling.
func repoSyncCommands() []command {
	return []command{
		{use: "sign COMMIT", short: "sign a commit (OpenPGP or ed25519)", run: repoSign, long: `Sign COMMIT with an OpenPGP key (--gpg-key FILE, or --gpg-sign KEYID with
--gpg-homedir) and/or an ed25519 key (--ed25519-key, --sign-key); the
signatures go into its detached metadata, where pulls verify them.`},
		{use: "verify COMMIT", short: "verify a commit's signatures", run: repoVerify, long: `Check COMMIT's signatures against OpenPGP keyrings (--keyring), ed25519
public keys (--ed25519-pubkey) or the keys and policy of a configured
remote (--remote). Exits 1 when no valid signature is found.`},
		{use: "summary", short: "show, regenerate or sign the summary", run: repoSummary, long: `Without options, print the repository's summary (refs, commits, static
deltas). --update regenerates it (and the delta indexes); with signing
options the new summary is signed too.`},
		{use: "remote", short: "add, list, show or delete remotes", long: `Configure the remotes a repository pulls from: their URL, signature
policy, keys and branches, in the repository's config or a remotes.d
directory.`, sub: []command{
			{use: "add NAME URL [BRANCH...]", short: "add a remote", run: remoteAdd, long: `Add remote NAME with URL. Signatures are required by default
(gpg-verify=true): import its OpenPGP keys with --gpg-import, or turn the
check off with --no-gpg-verify. --set KEY=VALUE sets other ostree remote
options.`},
			{use: "list", short: "list remotes", run: remoteList, long: `List the remotes, with their URLs when -u is given.`},
			{use: "show NAME", short: "show a remote's settings", run: remoteShow, long: `Print remote NAME's settings: URL, signature policy, keys and branches.`},
			{use: "delete NAME", short: "delete a remote", run: remoteDelete, long: `Delete remote NAME and its imported keys (--if-exists: no error when it
does not exist).`},
		}},
		{use: "serve", short: "serve an archive repository over HTTP (read-only)", run: repoServe, long: `Serve an archive repository read-only over HTTP at --addr, as a static file
server would (config, summary, objects, deltas); for tests, demos and
local mirrors.`},
		{use: "pull REMOTE[:REF] [REF...]", short: "pull refs from a remote over HTTP", run: repoPull, long: `Fetch refs of a remote over HTTP into the repository, verifying signatures
as the remote requires, using static deltas when the server has them and
fetching only the objects that are missing. Writes refs/remotes/REMOTE/REF
(refs/heads/REF with --mirror).`},
	}
}

// signerFlags are the signing options shared by `repo sign` and
// `repo summary`, named like ostree's where they mean the same.
type signerFlags struct {
	gpgSign   stringList // key IDs (with --gpg-homedir)
	gpgHome   *string
	gpgKey    *string // secret key file
	signType  *string
	signKeys  stringList // secret key files of --sign-type
	ed25519Fl *string
}

func addSignerFlags(f *flagSet) *signerFlags {
	s := &signerFlags{}
	f.Var(&s.gpgSign, "gpg-sign", "OpenPGP key ID to sign with, from --gpg-homedir (repeatable)")
	s.gpgHome = f.String("gpg-homedir", "", "GnuPG home directory holding the --gpg-sign keys")
	s.gpgKey = f.String("gpg-key", "", "OpenPGP secret key file (as gpg --export-secret-keys writes it)")
	s.signType = f.String("sign-type", "ed25519", "signature type of --sign-key (only ed25519)")
	f.Var(&s.signKeys, "sign-key", "secret key file for --sign-type (base64 of the 64-byte key; repeatable)")
	s.ed25519Fl = f.String("ed25519-key", "", "ed25519 secret key file (same as --sign-type=ed25519 --sign-key FILE)")
	return s
}

func (s *signerFlags) signers() ([]sign.Signer, error) {
	var out []sign.Signer
	if *s.gpgKey != "" {
		id := ""
		if len(s.gpgSign) == 1 {
			id = s.gpgSign[0]
		}
		g, err := sign.LoadGPGSigner(*s.gpgKey, id)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	} else {
		for _, id := range s.gpgSign {
			g, err := sign.GPGSignerFromHomedir(*s.gpgHome, id)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
	}
	keys := append([]string(nil), s.signKeys...)
	if *s.ed25519Fl != "" {
		keys = append(keys, *s.ed25519Fl)
	}
	if len(keys) > 0 && *s.signType != "ed25519" {
		return nil, usagef("--sign-type %q is not supported (only ed25519)", *s.signType)
	}
	for _, k := range keys {
		e, err := sign.LoadEd25519Signer(k)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func repoSign(f *flagSet) runFunc {
	open := repoFlag(f)
	sf := addSignerFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("expected one COMMIT")
		}
		signers, err := sf.signers()
		if err != nil {
			return err
		}
		if len(signers) == 0 {
			return usagef("no key given (--gpg-key, --gpg-sign or --ed25519-key)")
		}
		r, c, err := openRev(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		for _, s := range signers {
			if err := sign.SignCommit(r, c, s); err != nil {
				return err
			}
			e.printf("Signed %s with %s key %s\n", c, s.MetadataKey(), s.KeyID())
		}
		return nil
	}
}

func repoVerify(f *flagSet) runFunc {
	open := repoFlag(f)
	remoteName := f.String("remote", "", "verify with the keys and policy of this remote")
	var keyrings, edKeys stringList
	f.Var(&keyrings, "keyring", "OpenPGP public key file or directory (repeatable)")
	f.Var(&edKeys, "ed25519-pubkey", "ed25519 public key, base64 or a file of them (repeatable)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("expected one COMMIT")
		}
		r, c, err := openRev(open, pos[0])
		if err != nil {
			return err
		}
		defer r.Close()
		var vs []sign.Verifier
		if *remoteName != "" {
			st := &remote.Store{Repo: r}
			rem, err := st.Get(*remoteName)
			if err != nil {
				return err
			}
			if vs, err = st.Verifiers(rem, false); err != nil {
				return err
			}
			if len(vs) == 0 {
				return fmt.Errorf("remote %q verifies no signatures", *remoteName)
			}
		}
		if len(keyrings) > 0 {
			kr, err := sign.LoadKeyring(keyrings...)
			if err != nil {
				return err
			}
			vs = append(vs, &sign.GPGVerifier{Keyring: kr})
		}
		if len(edKeys) > 0 {
			var keys []ed25519.PublicKey
			for _, k := range edKeys {
				if _, err := os.Stat(k); err == nil {
					ks, err := sign.LoadEd25519PublicKeys(k)
					if err != nil {
						return err
					}
					keys = append(keys, ks...)
					continue
				}
				pk, err := sign.ParseEd25519PublicKey(k)
				if err != nil {
					return err
				}
				keys = append(keys, pk)
			}
			vs = append(vs, &sign.Ed25519Verifier{Trusted: keys})
		}
		if len(vs) == 0 {
			return usagef("no keys given (--remote, --keyring or --ed25519-pubkey)")
		}
		ids, err := sign.VerifyCommit(r, c, vs...)
		if err != nil {
			return err
		}
		for i, id := range ids {
			e.printf("Good %s signature on %s from key %s\n", vs[i].MetadataKey(), c, id)
		}
		return nil
	}
}

func repoSummary(f *flagSet) runFunc {
	open := repoFlag(f)
	update := f.BoolP("update", "u", false, "regenerate the summary (and delta indexes); removes an old summary.sig")
	sf := addSignerFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		signers, err := sf.signers()
		if err != nil {
			return err
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		var s *summary.Summary
		switch {
		case *update:
			if s, err = summary.Update(r, summary.Options{Signers: signers}); err != nil {
				return err
			}
		case len(signers) > 0:
			if err := summary.Sign(r, signers...); err != nil {
				return err
			}
			return nil
		default:
			data, err := os.ReadFile(r.Path() + "/summary")
			if err != nil {
				return fmt.Errorf("summary: %w", err)
			}
			if s, err = summary.Parse(data); err != nil {
				return err
			}
		}
		for _, ref := range s.Refs {
			e.printf("* %s\n    Latest Commit (%d bytes):\n      %s\n", ref.Name, ref.CommitSize, ref.Commit)
			if v := ref.Version(); v != "" {
				e.printf("    Version (ostree.commit.version): %s\n", v)
			}
			e.printf("    Timestamp (ostree.commit.timestamp): %s\n\n", time.Unix(int64(ref.Timestamp()), 0).UTC().Format(time.RFC3339))
		}
		deltas, _ := s.Deltas()
		e.printf("Repository Mode (ostree.summary.mode): %s\n", s.Mode())
		for _, d := range deltas {
			e.printf("Static Delta: %s\n", d.Name())
		}
		return nil
	}
}

func remoteStoreFlags(f *flagSet) (func() (*remote.Store, error), *string) {
	open := repoFlag(f)
	dir := f.String("remotes-d", "", "also read (and, for add, write NAME.conf into) this remotes.d directory")
	return func() (*remote.Store, error) {
		r, err := open()
		if err != nil {
			return nil, err
		}
		s := &remote.Store{Repo: r}
		if *dir != "" {
			s.ExtraDirs = []string{*dir}
		}
		return s, nil
	}, dir
}

// applySet applies an ostree-style --set KEY=VALUE to a remote.
func applySet(r *remote.Remote, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return usagef("--set wants KEY=VALUE, got %q", kv)
	}
	if k == "url" {
		return usagef("give the URL as an argument")
	}
	err := r.SetOption(k, v, strconv.ParseBool)
	var bad *remote.BadBoolError
	if errors.As(err, &bad) {
		return usagef("--set %s: not a boolean: %q", k, v)
	}
	return err
}

func remoteAdd(f *flagSet) runFunc {
	openStore, dir := remoteStoreFlags(f)
	var sets, imports stringList
	f.Var(&sets, "set", "set an option KEY=VALUE (repeatable), e.g. gpg-verify-summary=false")
	f.Var(&imports, "gpg-import", "import OpenPGP public keys from FILE into NAME.trustedkeys.gpg (repeatable)")
	noVerify := f.Bool("no-gpg-verify", false, "do not verify commit and summary signatures (not recommended)")
	sigKey := f.String("sign-verify", "", "verify ed25519 signatures of commits and summary: ed25519=inline:KEY, ed25519=file:PATH, a base64 key or a file")
	ifNot := f.Bool("if-not-exists", false, "do nothing if the remote exists")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) < 2 {
			return usagef("expected NAME URL [BRANCH...]")
		}
		rem := &remote.Remote{Name: pos[0], URL: pos[1], Branches: pos[2:], GPGVerify: !*noVerify, GPGVerifySummary: !*noVerify}
		if *sigKey != "" {
			// Accepts ostree's form ed25519=inline:KEY / ed25519=file:PATH,
			// or just a key or a file name.
			v := strings.TrimPrefix(*sigKey, "ed25519=")
			if strings.Contains(v, "=") && !strings.HasPrefix(v, "inline:") && !strings.HasPrefix(v, "file:") {
				return usagef("--sign-verify: only ed25519 keys are supported")
			}
			rem.SignVerify, rem.SignVerifySummary = true, true
			switch {
			case strings.HasPrefix(v, "file:"):
				rem.Ed25519File = strings.TrimPrefix(v, "file:")
			case strings.HasPrefix(v, "inline:"):
				v = strings.TrimPrefix(v, "inline:")
				if _, err := sign.ParseEd25519PublicKey(v); err != nil {
					return err
				}
				rem.Ed25519Keys = []string{v}
			default:
				if _, err := os.Stat(v); err == nil {
					rem.Ed25519File = v
				} else {
					if _, err := sign.ParseEd25519PublicKey(v); err != nil {
						return err
					}
					rem.Ed25519Keys = []string{v}
				}
			}
		}
		for _, kv := range sets {
			if err := applySet(rem, kv); err != nil {
				return err
			}
		}
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Repo.Close()
		return st.Add(rem, remote.AddOptions{Dir: *dir, IfNotExists: *ifNot, GPGImport: imports})
	}
}

func remoteList(f *flagSet) runFunc {
	openStore, _ := remoteStoreFlags(f)
	showURL := f.BoolP("show-urls", "u", false, "show URLs")
	return func(ctx context.Context, e *env, args []string) error {
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Repo.Close()
		all, err := st.List()
		if err != nil {
			return err
		}
		for _, r := range all {
			if *showURL {
				e.printf("%-20s %s\n", r.Name, r.URL)
			} else {
				e.printf("%s\n", r.Name)
			}
		}
		return nil
	}
}

func remoteShow(f *flagSet) runFunc {
	openStore, _ := remoteStoreFlags(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("expected NAME")
		}
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Repo.Close()
		r, err := st.Get(pos[0])
		if err != nil {
			return err
		}
		e.printf("name: %s\nurl: %s\n", r.Name, r.URL)
		if r.ContentURL != "" {
			e.printf("contenturl: %s\n", r.ContentURL)
		}
		e.printf("defined in: %s\ngpg-verify: %t\ngpg-verify-summary: %t\nsign-verify: %t\nsign-verify-summary: %t\n",
			r.File, r.GPGVerify, r.GPGVerifySummary, r.SignVerify, r.SignVerifySummary)
		if len(r.Branches) > 0 {
			e.printf("branches: %s\n", strings.Join(r.Branches, ";"))
		}
		if kr, err := st.GPGKeyring(r); err == nil {
			e.printf("trusted OpenPGP keys: %d\n", len(kr))
		}
		if r.TLSPermissive {
			e.printf("tls-permissive: true\n")
		}
		return nil
	}
}

func remoteDelete(f *flagSet) runFunc {
	openStore, _ := remoteStoreFlags(f)
	ifExists := f.Bool("if-exists", false, "do nothing if the remote does not exist")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("expected NAME")
		}
		st, err := openStore()
		if err != nil {
			return err
		}
		defer st.Repo.Close()
		return st.Delete(pos[0], *ifExists)
	}
}

func repoServe(f *flagSet) runFunc {
	dir := repoPathFlag(f, "archive repository to serve")
	addr := f.String("addr", "127.0.0.1:8080", "address to listen on")
	accessLog := f.Bool("access-log", false, "log every request to stderr")
	return func(ctx context.Context, e *env, args []string) error {
		if *dir == "" {
			return errNoRepo
		}
		opts := serve.Options{}
		if *accessLog {
			opts.Log = func(l serve.LogEntry) {
				fmt.Fprintf(e.stderr, "%s %s %s %d %d\n", time.Now().UTC().Format(time.RFC3339), l.Method, l.Path, l.Status, l.Bytes)
			}
		}
		return serve.ListenAndServe(ctx, *dir, *addr, opts, func(a net.Addr) {
			fmt.Fprintf(e.stderr, "Serving %s on http://%s/\n", *dir, a)
		})
	}
}

func repoPull(f *flagSet) runFunc {
	open := repoFlag(f)
	depth := f.Int("depth", 0, "also pull this many parent commits (-1: all)")
	mirror := f.Bool("mirror", false, "write refs/heads/REF instead of refs/remotes/REMOTE/REF; with no refs, pull every ref and the summary")
	metaOnly := f.Bool("commit-metadata-only", false, "fetch only the commit objects (verified); refs do not move")
	noDeltas := f.Bool("disable-static-deltas", false, "never use static deltas")
	tsCheck := f.Bool("timestamp-check", false, "refuse a commit older than the one the ref points to")
	workers := f.Int("workers", 16, "objects fetched and written in parallel")
	conns := f.Int("connections", 8, "HTTP connections per host")
	quiet := f.Bool("quiet", false, "no progress output")
	remotesD := f.String("remotes-d", "", "also read remotes from this remotes.d directory")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) == 0 {
			return usagef("expected REMOTE[:REF] [REF...]")
		}
		name, refs := pos[0], pos[1:]
		if n, ref, ok := strings.Cut(name, ":"); ok {
			name = n
			refs = append([]string{ref}, refs...)
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		st := &remote.Store{Repo: r}
		if *remotesD != "" {
			st.ExtraDirs = []string{*remotesD}
		}
		rem, err := st.Get(name)
		if err != nil {
			return err
		}
		src, err := pull.FromRemote(st, rem)
		if err != nil {
			return err
		}
		opts := pull.Options{
			Refs: refs, Branches: rem.Branches, Mirror: *mirror, CommitMetadataOnly: *metaOnly,
			Depth: *depth, Workers: *workers, Connections: *conns, DisableDeltas: *noDeltas, TimestampCheck: *tsCheck,
		}
		bar := newRenderer(e.stderr, *quiet)
		opts.Progress = func(p pull.Progress) { bar.Update(pullUpdate(p)) }
		opts.Retry = func(r pull.RetryEvent) { bar.Retry(r.Attempt, r.Attempts, r.URL, r.Err, r.Backoff) }
		opts.Log = func(format string, a ...any) { bar.Message("note: " + fmt.Sprintf(format, a...)) }
		res, err := pull.Pull(ctx, r, src, opts)
		if err != nil {
			bar.Clear()
		} else {
			bar.Done()
		}
		if err != nil {
			return err
		}
		for ref, c := range res.Refs {
			e.printf("%s:%s -> %s\n", name, ref, c)
		}
		e.printf("%d objects, %s transferred in %d requests", res.ObjectsFetched, humanBytes(uint64(res.BytesFetched)), res.Requests)
		if res.DeltasUsed > 0 {
			e.printf(", %d static delta(s)", res.DeltasUsed)
		}
		e.printf("\n")
		return nil
	}
}

// pullUpdate is what the renderer shows of a pull's progress.
func pullUpdate(p pull.Progress) progress.Update {
	return progress.Update{Stage: p.Stage, BytesDone: uint64(p.BytesDone), BytesTotal: uint64(p.BytesTotal),
		ObjectsDone: uint64(p.ObjectsDone), ObjectsTotal: uint64(p.ObjectsTotal),
		PartsDone: uint64(p.PartsDone), PartsTotal: uint64(p.PartsTotal), Rate: uint64(p.Rate)}
}
