package client

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/osupdate/os-update/repo"
	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
)

// repoDeltaCommands are the repo subcommands for static deltas.
func repoDeltaCommands() []command {
	return []command{
		{use: "delta", short: "generate, list, show and apply static deltas", long: `Static deltas carry the change from one commit to another (or a whole
commit, from empty) as a few compressed parts that clients fetch instead of
single objects.`, sub: []command{
			{use: "generate", short: "generate a static delta between two commits", run: deltaGenerate, long: `Generate the static delta from --from (default the parent of --to) to --to,
or from nothing with --empty: parts of compressed objects and bsdiff
patches, described by a superblock under deltas/. Run repo summary --update
afterwards so that clients find it.`},
			{use: "list", short: "list the static deltas of a repository", run: deltaList, long: `List the static deltas of the repository as FROM-TO (or TO for a from-empty
delta).`},
			{use: "show DELTA", short: "describe a static delta", run: deltaShow, long: `Describe static delta DELTA (as repo delta list names it): its parts, their
sizes and the objects and operations they hold.`},
			{use: "apply-offline PATH", short: "apply a static delta from a directory", run: deltaApplyOffline, long: `Apply the static delta whose superblock is at PATH (a directory copied from
a server's deltas/) to the repository, writing the objects of its target
commit.`},
		}},
	}
}

// parseMB parses a size given in decimal megabytes, as ostree's options
// are ("32" = 32 000 000 bytes); a suffix k, m or g (decimal) or b
// (bytes) selects another unit.
func parseMB(s string) (uint64, error) {
	mult := uint64(1_000_000)
	switch {
	case strings.HasSuffix(s, "b"), strings.HasSuffix(s, "B"):
		mult, s = 1, s[:len(s)-1]
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1000, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		s = s[:len(s)-1]
	case strings.HasSuffix(s, "g"), strings.HasSuffix(s, "G"):
		mult, s = 1_000_000_000, s[:len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 || n > (1<<63)/mult {
		return 0, fmt.Errorf("invalid size %q: want a positive number of megabytes", s)
	}
	return n * mult, nil
}

func deltaGenerate(f *flagSet) runFunc {
	open := repoFlag(f)
	from := f.String("from", "", "source revision (default: the parent of --to)")
	empty := f.Bool("empty", false, "generate a from-empty (scratch) delta")
	to := f.String("to", "", "target revision (required)")
	inline := f.Bool("inline", false, "store the parts inside the superblock")
	maxChunk := f.String("max-chunk-size", "32", "cut parts at this many megabytes of payload")
	minFallback := f.String("min-fallback-size", "4", "new files above this many megabytes with no similar old file are fetched whole")
	maxBsdiff := f.String("max-bsdiff-size", "128", "diff file pairs up to this many megabytes together")
	noBsdiff := f.Bool("disable-bsdiff", false, "never use bsdiff")
	noFallbacks := f.Bool("no-fallbacks", false, "put every object in the parts")
	compression := f.String("compression", "auto", "part compression: auto (xz command if installed), builtin, xz, none")
	extreme := f.Bool("xz-extreme", false, "use xz's extreme presets (slower, a few percent smaller)")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		if *to == "" {
			return usagef("--to is required")
		}
		if *empty && *from != "" {
			return usagef("--from and --empty exclude each other")
		}
		var opts delta.GenerateOptions
		for _, s := range []struct {
			val string
			dst *uint64
			nm  string
		}{{*maxChunk, &opts.MaxChunkSize, "--max-chunk-size"}, {*minFallback, &opts.MinFallbackSize, "--min-fallback-size"}, {*maxBsdiff, &opts.MaxBsdiffSize, "--max-bsdiff-size"}} {
			if *s.dst, err = parseMB(s.val); err != nil {
				return usagef("%s: %v", s.nm, err)
			}
		}
		opts.Inline, opts.DisableBsdiff, opts.NoFallbacks, opts.XZExtreme = *inline, *noBsdiff, *noFallbacks, *extreme
		if opts.Compression, err = delta.ParseCompression(*compression); err != nil {
			return usagef("--compression: %v", err)
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		toC, err := r.ResolveRev(*to)
		if err != nil {
			return err
		}
		var fromC object.Checksum
		switch {
		case *from != "":
			if fromC, err = r.ResolveRev(*from); err != nil {
				return err
			}
		case !*empty:
			cm, err := r.LoadCommit(toC)
			if err != nil {
				return err
			}
			if !cm.HasParent() {
				return fmt.Errorf("commit %s has no parent: give --from or --empty", toC)
			}
			fromC = cm.Parent
		}
		start := time.Now()
		st, err := delta.Generate(ctx, r, fromC, toC, opts)
		if err != nil {
			return err
		}
		e.printf("Generated delta %s\n", st.Name)
		e.printf("  %d parts, %d bytes (superblock %d, parts %d); %d fallbacks, %d bytes; in %.2fs\n",
			st.Parts, st.TotalSize(), st.SuperblockSize, st.PartsSize, st.Fallbacks, st.FallbackSize, time.Since(start).Seconds())
		e.printf("  objects: %d reused, %d metadata, %d whole (%d stored uncompressed), %d rollsum, %d bsdiff; %d not diffed (nothing shared with the source)\n", st.Reused, st.Meta, st.Plain, st.Stored, st.Rollsum, st.Bsdiff, st.NoDiff)
		return nil
	}
}

func deltaList(f *flagSet) runFunc {
	open := repoFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		r, err := open()
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
}

func deltaShow(f *flagSet) runFunc {
	open := repoFlag(f)
	ops := f.Bool("ops", false, "also count the operations of each part")
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("give exactly one delta name (FROM-TO or TO, in hex)")
		}
		n, err := delta.ParseName(pos[0])
		if err != nil {
			return usagef("%v", err)
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		raw, err := delta.ReadSuperblock(r, n)
		if err != nil {
			return err
		}
		sb, err := delta.DecodeSuperblock(raw)
		if err != nil {
			return err
		}
		if sb.Name != n {
			return fmt.Errorf("delta %s: superblock names %s", n, sb.Name)
		}
		endian := "little"
		if sb.BigEndian {
			endian = "big"
		}
		e.printf("Delta: %s\n", sb.Name)
		if !sb.Name.From.IsZero() {
			e.printf("From: %s\n", sb.Name.From)
		} else {
			e.printf("From: (empty)\n")
		}
		e.printf("To: %s\n", sb.Name.To)
		e.printf("Endianness: %s\n", endian)
		e.printf("Timestamp: %s\n", time.Unix(int64(sb.Timestamp), 0).UTC().Format(time.RFC3339))
		e.printf("Superblock: %d bytes, sha256 %x\n", len(raw), delta.Digest(raw))
		e.printf("Detached metadata: %d keys\n", len(sb.CommitMeta))
		e.printf("Number of parts: %d\n", len(sb.Parts))
		e.printf("Number of fallback objects: %d\n", len(sb.Fallbacks))
		var size, usize, fsize, fusize uint64
		for i, p := range sb.Parts {
			size += p.Size
			usize += p.USize
			where := ""
			if _, ok := sb.Inline[i]; ok {
				where = " (inline)"
			}
			e.printf("  Part %d: %d objects, %d bytes, %d uncompressed%s\n", i, len(p.Objects), p.Size, p.USize, where)
			if *ops {
				counts, err := partOps(r, sb, i)
				if err != nil {
					return err
				}
				e.printf("    operations: %s\n", counts)
			}
		}
		for _, fb := range sb.Fallbacks {
			fsize += fb.Size
			fusize += fb.USize
		}
		e.printf("Total Part Size: %d\n", size)
		e.printf("Total Uncompressed Part Size: %d\n", usize)
		e.printf("Total Fallback Size: %d\n", fsize)
		e.printf("Total Uncompressed Fallback Size: %d\n", fusize)
		return nil
	}
}

// partOps summarizes the operation kinds of part i.
func partOps(r *repo.Repo, sb *delta.Superblock, i int) (string, error) {
	counts, err := delta.OpCounts(context.Background(), r, sb, i)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range []byte("SorRwcB") {
		if counts[c] > 0 {
			parts = append(parts, fmt.Sprintf("%c=%d", c, counts[c]))
		}
	}
	return strings.Join(parts, " "), nil
}

func deltaApplyOffline(f *flagSet) runFunc {
	open := repoFlag(f)
	return func(ctx context.Context, e *env, args []string) error {
		pos := args
		var err error
		if len(pos) != 1 {
			return usagef("give the delta directory or its superblock file")
		}
		r, err := open()
		if err != nil {
			return err
		}
		defer r.Close()
		n, st, err := delta.ApplyOffline(ctx, r, pos[0])
		if err != nil {
			return err
		}
		e.printf("Applied delta %s: %d parts (%d already present), %d objects\n", n, st.Parts+st.PartsSkipped, st.PartsSkipped, st.Objects)
		return nil
	}
}
