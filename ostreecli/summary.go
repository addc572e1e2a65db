package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo/gvariant"
	"github.com/osupdate/os-update/repo/sign"
	"github.com/osupdate/os-update/repo/summary"
)

func runSummary(ctx context.Context, e *env, args []string) error {
	c := newCmd("summary", "", "Manage summary metadata", true)
	var update, view, raw bool
	var gpgKeys, signKeys, meta []string
	var gpgHome, signType string
	c.flag("update", 'u', &update, "Update the summary")
	c.flag("view", 'v', &view, "View the local summary file")
	c.flag("raw", 0, &raw, "View the raw bytes of the summary file")
	c.strs("gpg-sign", 0, &gpgKeys, "KEY-ID", "GPG Key ID to sign the summary with")
	c.str("gpg-homedir", 0, &gpgHome, "HOMEDIR", "GPG Homedir to use when looking for keyrings")
	c.strs("sign", 0, &signKeys, "KEY-ID", "Key ID to sign the summary with")
	c.str("sign-type", 0, &signType, "NAME", "Signature type to use (defaults to 'ed25519')")
	c.strs("add-metadata", 'm', &meta, "KEY=VALUE", "Additional metadata field to add to the summary")
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	switch {
	case update:
		var opts summary.Options
		for _, kv := range meta {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("Missing '=' in KEY=VALUE metadata '%s'", kv)
			}
			val, err := parseVariantText(v)
			if err != nil {
				return err
			}
			opts.Metadata.Set(k, val)
		}
		for _, k := range gpgKeys {
			s, err := sign.GPGSignerFromHomedir(gpgHome, k)
			if err != nil {
				return err
			}
			opts.Signers = append(opts.Signers, s)
		}
		for _, k := range signKeys {
			s, err := ed25519Signer(signType, k)
			if err != nil {
				return err
			}
			opts.Signers = append(opts.Signers, s)
		}
		_, err := summary.Update(r, opts)
		return err
	case view || raw:
		data, err := os.ReadFile(filepath.Join(r.Path(), "summary"))
		if errors.Is(err, os.ErrNotExist) {
			return errors.New("No summary file")
		}
		if err != nil {
			return err
		}
		s, err := summary.Parse(data)
		if err != nil {
			return err
		}
		if raw {
			return errors.New("ostree summary --raw: not implemented by os-update")
		}
		printSummary(e, s)
		return nil
	case len(gpgKeys) > 0 || len(signKeys) > 0:
		return errors.New("ostree summary signing without -u: not implemented by os-update")
	}
	return c.usageError(e, "No option specified; use -u to update summary")
}

// printSummary prints a summary the way `ostree summary --view` does.
func printSummary(e *env, s *summary.Summary) {
	for _, ref := range s.Refs {
		e.printf("* %s\n    Latest Commit (%s):\n      %s\n", ref.Name, formatSize(ref.CommitSize), ref.Commit)
		if v := ref.Version(); v != "" {
			e.printf("    Version (ostree.commit.version): %s\n", v)
		}
		if ts := ref.Timestamp(); ts != 0 {
			e.printf("    Timestamp (ostree.commit.timestamp): %s\n", iso8601(ts))
		}
		e.printf("\n")
	}
	for _, kv := range s.Metadata {
		switch kv.Key {
		case summary.KeyMode:
			e.printf("Repository Mode (ostree.summary.mode): %s\n", kv.Value.Value)
		case summary.KeyLastModified:
			if t, ok := kv.Value.Value.(uint64); ok {
				e.printf("Last-Modified (ostree.summary.last-modified): %s\n", iso8601(bits.ReverseBytes64(t)))
			}
		case summary.KeyTombstoneCommits:
			yes := "No"
			if b, _ := kv.Value.Value.(bool); b {
				yes = "Yes"
			}
			e.printf("Has Tombstone Commits (ostree.summary.tombstone-commits): %s\n", yes)
		default:
			e.printf("%s: %s\n", kv.Key, gvariant.Format(kv.Value.Value, kv.Value.Type))
		}
	}
}

func iso8601(unix uint64) string {
	return time.Unix(int64(unix), 0).UTC().Format("2006-01-02T15:04:05") + "+00"
}
