package ostreecli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
)

func runStaticDelta(ctx context.Context, e *env, args []string) error {
	cmds := []namedCommand{
		{"list", command{"List static delta files", deltaList}},
		{"show", command{"Dump information on a delta", deltaShow}},
		{"delete", command{"Remove a delta", deltaDelete}},
		{"generate", command{"Generate static delta files", deltaGenerate}},
		{"apply-offline", command{"Apply static delta file", deltaApplyOffline}},
		{"verify", command{"Verify static delta signatures", notImplemented("static-delta verify")}},
		{"indexes", command{"List static delta indexes", notImplemented("static-delta indexes")}},
		{"reindex", command{"Regenerate static delta indexes", notImplemented("static-delta reindex")}},
	}
	return dispatch(ctx, e, "static-delta", cmds, nil, args)
}

// megabytes parses the size options, given in megabytes.
func megabytes(name, s string) (uint64, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("Invalid %s: %s", name, s)
	}
	return n * 1000 * 1000, nil
}

func deltaGenerate(ctx context.Context, e *env, args []string) error {
	c := newCmd("static-delta generate", "[TO]", "Generate static delta files", true)
	var from, to, endian, minFallback, maxBsdiff, maxChunk, filename, signType string
	var signKeys []string
	var empty, inline, noBsdiff, ifNotExists, swap bool
	c.str("from", 0, &from, "REV", "Create delta from revision REV")
	c.flag("empty", 0, &empty, "Create delta from scratch")
	c.flag("inline", 0, &inline, "Inline delta parts into main delta")
	c.str("to", 0, &to, "REV", "Create delta to revision REV")
	c.flag("disable-bsdiff", 0, &noBsdiff, "Disable use of bsdiff")
	c.flag("if-not-exists", 'n', &ifNotExists, "Only generate if a delta does not already exist")
	c.str("set-endianness", 0, &endian, "ENDIAN", "Choose metadata endianness ('l' or 'B')")
	c.flag("swap-endianness", 0, &swap, "Swap metadata endianness from host order")
	c.str("min-fallback-size", 0, &minFallback, "SIZE", "Minimum uncompressed size in megabytes for individual HTTP request")
	c.str("max-bsdiff-size", 0, &maxBsdiff, "SIZE", "Maximum size in megabytes to consider bsdiff compression for input files")
	c.str("max-chunk-size", 0, &maxChunk, "SIZE", "Maximum size of delta chunks in megabytes")
	c.str("filename", 0, &filename, "PATH", "Write the delta content to PATH (a directory).  If not specified, the OSTree repository is used")
	c.strs("sign", 0, &signKeys, "KEY_ID", "Sign the delta with")
	c.str("sign-type", 0, &signType, "NAME", "Signature type to use (defaults to 'ed25519')")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if endian != "" || swap || filename != "" || len(signKeys) > 0 {
		return errors.New("ostree static-delta generate --set-endianness/--swap-endianness/--filename/--sign: not implemented by os-update")
	}
	if to == "" && len(pos) > 0 {
		to = pos[0]
	}
	if to == "" {
		return errors.New("TO revision must be specified")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	toC, err := resolve(r, to)
	if err != nil {
		return err
	}
	var fromC object.Checksum
	switch {
	case empty && from != "":
		return errors.New("Cannot specify both --empty and --from=REV")
	case from != "":
		if fromC, err = resolve(r, from); err != nil {
			return err
		}
	case !empty:
		// The default is from the parent of TO.
		cm, err := r.LoadCommit(toC)
		if err != nil {
			return err
		}
		if !cm.HasParent() {
			return fmt.Errorf("Commit %s has no parent; use --empty", toC)
		}
		fromC = cm.Parent
	}
	if ifNotExists {
		if _, err := os.Stat(filepath.Join(r.Path(), delta.SuperblockPath(fromC, toC))); err == nil {
			e.printf("Delta %s already exists.\n", delta.Name{From: fromC, To: toC})
			return nil
		}
	}
	opts := delta.GenerateOptions{Inline: inline, DisableBsdiff: noBsdiff}
	for _, s := range []struct {
		name, val string
		dst       *uint64
	}{{"min-fallback-size", minFallback, &opts.MinFallbackSize}, {"max-bsdiff-size", maxBsdiff, &opts.MaxBsdiffSize}, {"max-chunk-size", maxChunk, &opts.MaxChunkSize}} {
		if s.val == "" {
			continue
		}
		if *s.dst, err = megabytes(s.name, s.val); err != nil {
			return err
		}
		if *s.dst == 0 && s.name == "min-fallback-size" {
			opts.NoFallbacks = true
		}
	}
	e.printf("Generating static delta:\n")
	if fromC != (object.Checksum{}) {
		e.printf("  From: %s\n", fromC)
	} else {
		e.printf("  From: empty\n")
	}
	e.printf("  To:   %s\n", toC)
	_, err = delta.Generate(ctx, r, fromC, toC, opts)
	return err
}

func deltaList(ctx context.Context, e *env, args []string) error {
	c := newCmd("static-delta list", "", "List static delta files", true)
	if _, err := c.parseArgs(e, args); err != nil {
		return err
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	names, err := delta.List(r)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		e.printf("(No static deltas)\n")
	}
	for _, n := range names {
		e.printf("%s\n", n)
	}
	return nil
}

func deltaShow(ctx context.Context, e *env, args []string) error {
	c := newCmd("static-delta show", "DELTA", "Dump information on a delta", true)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "DELTA must be specified")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := delta.ParseName(pos[0])
	if err != nil {
		return err
	}
	raw, err := delta.ReadSuperblock(r, n)
	if err != nil {
		return err
	}
	sb, err := delta.DecodeSuperblock(raw)
	if err != nil {
		return err
	}
	e.printf("Delta: %s\n", n)
	e.printf("Number of parts: %d\n", len(sb.Parts))
	e.printf("Number of fallback entries: %d\n", len(sb.Fallbacks))
	return nil
}

func deltaDelete(ctx context.Context, e *env, args []string) error {
	c := newCmd("static-delta delete", "DELTA", "Remove a delta", true)
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "DELTA must be specified")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := delta.ParseName(pos[0])
	if err != nil {
		return err
	}
	dir := filepath.Join(r.Path(), filepath.Dir(delta.SuperblockPath(n.From, n.To)))
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("Can't find delta %s", pos[0])
	}
	return os.RemoveAll(dir)
}

func deltaApplyOffline(ctx context.Context, e *env, args []string) error {
	c := newCmd("static-delta apply-offline", "PATH", "Apply static delta file", true)
	var signType string
	var keysFile string
	c.str("sign-type", 0, &signType, "NAME", "Signature type to use (defaults to 'ed25519')")
	c.str("keys-file", 0, &keysFile, "PATH", "Read key(s) from file")
	pos, err := c.parseArgs(e, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 {
		return c.usageError(e, "PATH must be specified")
	}
	if keysFile != "" || len(pos) > 1 {
		return errors.New("ostree static-delta apply-offline with signature keys: not implemented by os-update")
	}
	r, err := c.openRepo()
	if err != nil {
		return err
	}
	defer r.Close()
	_, _, err = delta.ApplyOffline(ctx, r, pos[0])
	return err
}
