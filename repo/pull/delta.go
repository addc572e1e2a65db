package pull

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/osupdate/os-update/repo/delta"
	"github.com/osupdate/os-update/repo/object"
	"github.com/osupdate/os-update/repo/summary"
)

// StaticDeltas applies a libostree static delta, the pull's first try, with
// package delta. It prefers a delta from a complete local commit (the
// ref's current one first) and uses a delta from nothing only when there
// is no local commit at all, as libostree does. Deltas are authenticated
// through the digest the summary (or delta index) records and through the
// embedded commit, which must be the commit whose signature was verified.
func StaticDeltas(ctx context.Context, req *DeltaRequest) (bool, error) {
	deltas := req.Deltas
	if len(deltas) == 0 {
		b, err := req.Fetch(ctx, delta.IndexPath(req.To), summary.MaxSize)
		if errors.Is(err, errNotFound) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if deltas, err = summary.ParseDeltaIndex(b); err != nil {
			return false, err
		}
	}
	var chosen *summary.Delta
	for _, from := range req.FromCandidates {
		for i := range deltas {
			if deltas[i].To == req.To && deltas[i].From == from {
				chosen = &deltas[i]
				break
			}
		}
		if chosen != nil {
			break
		}
	}
	if chosen == nil && len(req.FromCandidates) == 0 {
		for i := range deltas {
			if deltas[i].To == req.To && deltas[i].From.IsZero() {
				chosen = &deltas[i]
			}
		}
	}
	if chosen == nil {
		return false, nil
	}
	d := *chosen
	sb, err := req.Fetch(ctx, delta.SuperblockPath(d.From, d.To), delta.MaxSuperblockSize)
	if errors.Is(err, errNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("delta %s: %w", d.Name(), err)
	}
	if object.Checksum(delta.Digest(sb)) != d.Superblock {
		return false, fmt.Errorf("delta %s: superblock does not match the digest the summary lists", d.Name())
	}
	cache := newPartCache(req.Repo, delta.Name{From: d.From, To: d.To})
	cache.dropOthers()
	var parts []delta.PartHeader
	if dec, err := delta.DecodeSuperblock(sb); err == nil {
		parts = dec.Parts
		// Refused before any part is fetched when what the superblock
		// declares does not fit: the objects, the largest part's spool,
		// and the parts not yet in the part cache.
		need := deltaNeed(dec)
		for i, ph := range dec.Parts {
			if _, inline := dec.Inline[i]; !inline && !cache.has(i, ph) {
				need += ph.Size
			}
		}
		if err := req.Repo.CheckSpace("pull", need); err != nil {
			return false, fmt.Errorf("delta %s: %w", d.Name(), err)
		}
		// Bytes still to transfer: cached parts (and the kept start of
		// a part whose transfer broke off) are not fetched again.
		var n uint64
		for i, ph := range dec.Parts {
			if _, inline := dec.Inline[i]; !inline {
				n += cache.missing(i, ph)
			}
		}
		for _, fb := range dec.Fallbacks {
			n += fb.Size
		}
		if req.Expect != nil {
			req.Expect(int64(n))
		}
	}
	_, err = delta.Apply(ctx, req.Tx, sb, delta.ApplyOptions{
		FetchPart: func(ctx context.Context, index int) (io.ReadCloser, error) {
			fetch := func(ctx context.Context, offset int64) (io.ReadCloser, error) {
				return req.FetchStream(ctx, delta.PartPath(d.From, d.To, index), offset)
			}
			if index < 0 || index >= len(parts) {
				return fetch(ctx, 0)
			}
			// Verified parts survive a cancel, a crash or a lost
			// connection: the next pull fetches only the others.
			return cache.open(ctx, index, parts[index], fetch)
		},
		FetchFallback: func(ctx context.Context, n object.Name) error {
			return req.FetchObject(ctx, n.Checksum)
		},
		VerifyCommit: func(ctx context.Context, s *delta.Superblock) error {
			return req.VerifyCommit(s.Commit)
		},
		Progress: func(done, total int) {
			if req.Progress != nil {
				req.Progress(done, total)
			}
		},
	})
	if err != nil {
		return false, err // Apply's errors name the delta and the part
	}
	cache.remove()
	return true, nil
}

// deltaNeed is the space applying a delta takes: the uncompressed size of
// every object its parts and fallbacks declare, and room to spool the
// largest part.
func deltaNeed(sb *delta.Superblock) uint64 {
	var n, spool uint64
	for _, ph := range sb.Parts {
		n += ph.USize
		spool = max(spool, ph.USize)
	}
	for _, fb := range sb.Fallbacks {
		n += fb.USize
	}
	return n + spool
}
