package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/osupdate/os-update/repo/remote"
	"github.com/osupdate/os-update/repo/sign"
)

func runRemote(ctx context.Context, e *env, args []string) error {
	cmds := []namedCommand{
		{"add", command{"Add a remote repository", remoteAdd}},
		{"delete", command{"Delete a remote repository", remoteDelete}},
		{"show-url", command{"Show remote repository URL", remoteShowURL}},
		{"list", command{"List remote repository names", remoteList}},
		{"gpg-import", command{"Import GPG keys", notImplemented("remote gpg-import")}},
		{"gpg-list-keys", command{"Show remote GPG keys", notImplemented("remote gpg-list-keys")}},
		{"add-cookie", command{"Add a cookie to remote", notImplemented("remote add-cookie")}},
		{"delete-cookie", command{"Remove one cookie from remote", notImplemented("remote delete-cookie")}},
		{"list-cookies", command{"Show remote repository cookies", notImplemented("remote list-cookies")}},
		{"refs", command{"List remote refs", notImplemented("remote refs")}},
		{"summary", command{"Show remote summary", notImplemented("remote summary")}},
	}
	return dispatch(ctx, e, "remote", cmds, nil, args)
}

// applySet applies a `--set=KEY=VALUE` to a remote, reading booleans
// and wording errors as libostree's key files do.
func applySet(r *remote.Remote, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("Missing '=' in KEY=VALUE for --set")
	}
	err := r.SetOption(k, v, func(s string) (bool, error) {
		switch strings.ToLower(s) {
		case "true", "1", "yes":
			return true, nil
		case "false", "0", "no":
			return false, nil
		}
		return false, errors.New("not a boolean")
	})
	var bad *remote.BadBoolError
	if errors.As(err, &bad) {
		return fmt.Errorf("Key file contains key “%s” which has a value that cannot be interpreted.", k)
	}
	return err
}

func remoteAdd(ctx context.Context, e *env, args []string) error {
	c := newCmd("remote add", "NAME [metalink=|mirrorlist=]URL [BRANCH...]", "Add a remote repository", true)
	var sets, imports []string
	var noGPG, noSign, ifNot, force bool
	var signVerify, backend, contentURL, collection, sysroot string
	c.strs("set", 0, &sets, "KEY=VALUE", "Set config option KEY=VALUE for remote")
	c.flag("no-gpg-verify", 0, &noGPG, "Disable GPG verification")
	c.flag("no-sign-verify", 0, &noSign, "Disable signature verification")
	c.str("sign-verify", 0, &signVerify, "KEYTYPE=[inline|file]:PUBKEY", "Verify signatures using KEYTYPE=inline:PUBKEY or KEYTYPE=file:/path/to/key")
	c.flag("if-not-exists", 0, &ifNot, "Do nothing if the provided remote exists")
	c.flag("force", 0, &force, "Replace the provided remote if it exists")
	c.strs("gpg-import", 0, &imports, "FILE", "Import GPG key from FILE")
	c.str("custom-backend", 0, &backend, "NAME", "This remote has content not fetched via libostree")
	c.str("contenturl", 0, &contentURL, "URL", "Use URL when fetching content")
	c.str("collection-id", 0, &collection, "COLLECTION-ID", "Globally unique ID for this repository as an collection of refs for redistribution to other repositories")
	c.str("sysroot", 0, &sysroot, "PATH", "Use sysroot at PATH (overrides --repo)")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 2 {
		return c.usageError(e, "NAME and URL must be specified")
	}
	if backend != "" || strings.HasPrefix(pos[1], "metalink=") || strings.HasPrefix(pos[1], "mirrorlist=") {
		return errors.New("ostree remote add with metalink, mirrorlist or a custom backend: not implemented by os-update")
	}
	if sysroot != "" {
		c.repoPath = sysroot + "/ostree/repo"
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	rem := &remote.Remote{Name: pos[0], URL: pos[1], Branches: pos[2:], GPGVerify: !noGPG, GPGVerifySummary: false, ContentURL: contentURL, CollectionID: collection}
	if signVerify != "" {
		typ, v, _ := strings.Cut(signVerify, "=")
		if typ != "ed25519" {
			return fmt.Errorf("Requested signature type is not implemented")
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
			return fmt.Errorf("Invalid key reference %s, expected inline: or file:", v)
		}
	}
	if noSign {
		// --no-sign-verify turns off every kind of signature check, GPG too.
		rem.SignVerify, rem.SignVerifySummary = false, false
		rem.GPGVerify, rem.GPGVerifySummary = false, false
	}
	for _, kv := range sets {
		if err := applySet(rem, kv); err != nil {
			return err
		}
	}
	st := &remote.Store{Repo: r}
	if _, err := st.Get(rem.Name); err == nil {
		switch {
		case ifNot:
			return nil
		case force:
			if err := st.Delete(rem.Name, true); err != nil {
				return err
			}
		default:
			return fmt.Errorf("Remote configuration for \"%s\" already exists: (in config)", rem.Name)
		}
	}
	return st.Add(rem, remote.AddOptions{GPGImport: imports})
}

func remoteDelete(ctx context.Context, e *env, args []string) error {
	c := newCmd("remote delete", "NAME", "Delete a remote repository", true)
	var ifExists bool
	var sysroot string
	c.flag("if-exists", 0, &ifExists, "Do nothing if the provided remote does not exist")
	c.str("sysroot", 0, &sysroot, "PATH", "Use sysroot at PATH (overrides --repo)")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "NAME must be specified")
	}
	if sysroot != "" {
		c.repoPath = sysroot + "/ostree/repo"
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	st := &remote.Store{Repo: r}
	if err := st.Delete(pos[0], ifExists); err != nil {
		if errors.Is(err, remote.ErrNotFound) {
			return fmt.Errorf("Remote \"%s\" not found", pos[0])
		}
		return err
	}
	return nil
}

// getRemote looks a remote up with ostree's message for a missing one.
func getRemote(st *remote.Store, name string) (*remote.Remote, error) {
	rem, err := st.Get(name)
	if errors.Is(err, remote.ErrNotFound) {
		return nil, fmt.Errorf("Remote \"%s\" not found", name)
	}
	return rem, err
}

func remoteShowURL(ctx context.Context, e *env, args []string) error {
	c := newCmd("remote show-url", "NAME", "Show remote repository URL", true)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "NAME must be specified")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	rem, err := getRemote(&remote.Store{Repo: r}, pos[0])
	if err != nil {
		return err
	}
	e.printf("%s\n", rem.URL)
	return nil
}

func remoteList(ctx context.Context, e *env, args []string) error {
	c := newCmd("remote list", "", "List remote repository names", true)
	var urls bool
	c.flag("show-urls", 'u', &urls, "Show remote URLs in list")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	all, err := (&remote.Store{Repo: r}).List()
	if err != nil {
		return err
	}
	width := 0
	for _, rem := range all {
		width = max(width, len(rem.Name))
	}
	for _, rem := range all {
		if urls {
			e.printf("%-*s  %s\n", width, rem.Name, rem.URL)
		} else {
			e.printf("%s\n", rem.Name)
		}
	}
	return nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// trustGlobalKeys adds $OSTREE_GPG_HOME, libostree's override of its
// global trusted keyring directory, to the keys a remote trusts.
func trustGlobalKeys(rem *remote.Remote) {
	if d := os.Getenv("OSTREE_GPG_HOME"); d != "" {
		rem.GPGKeyPath = append(rem.GPGKeyPath, d)
	}
}
