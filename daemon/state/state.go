// Package state is the daemon's persistent memory in one bbolt file:
// transaction history, the cached result of the last update check, and
// small settings (requested origin, automatic-update bookkeeping).
//
// Guarantees: every change is one bbolt transaction, so it is durable once
// the call returns and all-or-nothing across crashes. A transaction that was
// running when the daemon died stays "running" on disk until Recover marks
// it "interrupted" at the next start.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/osupdate/os-update/daemon/api"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketHistory  = []byte("history")
	bucketSettings = []byte("settings")
	bucketVerdicts = []byte("verdicts")
	keyCached      = []byte("cached-update")
)

// Result values of a history entry.
const (
	ResultRunning     = "running"
	ResultSuccess     = "success"
	ResultFailed      = "failed"
	ResultCancelled   = "cancelled"
	ResultInterrupted = "interrupted"
)

// Store is an open state file.
type Store struct{ db *bolt.DB }

// Open opens (creating if needed) the state file. It waits at most a
// second for another process holding it, then fails naming the file.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketHistory, bucketSettings, bucketVerdicts} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

func idKey(id uint64) []byte {
	k := make([]byte, 8)
	binary.BigEndian.PutUint64(k, id)
	return k
}

// StartTransaction records a new running transaction and returns its id.
func (s *Store) StartTransaction(kind string, uid uint32, from string, start time.Time) (uint64, error) {
	var id uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		var err error
		if id, err = b.NextSequence(); err != nil {
			return err
		}
		e := api.HistoryEntry{ID: id, Kind: kind, CallerUID: uid, Start: start.Unix(), From: from, Result: ResultRunning}
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(idKey(id), v)
	})
	if err != nil {
		return 0, fmt.Errorf("record transaction: %w", err)
	}
	return id, nil
}

// Record adds a finished entry (an event that was no transaction: a boot
// verdict, a reboot, a settings change) in one step and returns its id.
func (s *Store) Record(e api.HistoryEntry) (uint64, error) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		e.ID = id
		v, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(idKey(id), v)
	})
	if err != nil {
		return 0, fmt.Errorf("record %s in history: %w", e.Kind, err)
	}
	return e.ID, nil
}

// FinishTransaction records the outcome of a transaction and its note.
// A non-empty from replaces the one recorded at the start.
func (s *Store) FinishTransaction(id uint64, result, from, to, errMsg, note string, end time.Time) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		v := b.Get(idKey(id))
		if v == nil {
			return fmt.Errorf("transaction %d not in history", id)
		}
		var e api.HistoryEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("history entry %d: %w", id, err)
		}
		e.Result, e.To, e.Error, e.Note, e.End = result, to, errMsg, note, end.Unix()
		if from != "" {
			e.From = from
		}
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		return b.Put(idKey(id), nv)
	})
}

// Recover marks transactions left running by a dead daemon as
// interrupted and returns them.
func (s *Store) Recover(now time.Time) ([]api.HistoryEntry, error) {
	var found []api.HistoryEntry
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHistory)
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e api.HistoryEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("history entry %x: %w", k, err)
			}
			if e.Result != ResultRunning {
				continue
			}
			e.Result, e.End = ResultInterrupted, now.Unix()
			e.Error = "the daemon stopped while this transaction ran"
			nv, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := b.Put(k, nv); err != nil {
				return err
			}
			found = append(found, e)
		}
		return nil
	})
	return found, err
}

// History returns up to limit entries, newest first (limit <= 0: all).
func (s *Store) History(limit int) ([]api.HistoryEntry, error) {
	var out []api.HistoryEntry
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Last(); k != nil && (limit <= 0 || len(out) < limit); k, v = c.Prev() {
			var e api.HistoryEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("history entry %x: %w", k, err)
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// SetCachedUpdate stores the result of an update check.
func (s *Store) SetCachedUpdate(u api.CachedUpdate) error {
	v, err := json.Marshal(u)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSettings).Put(keyCached, v) })
}

// CachedUpdate returns the last update check, or nil if none was made.
func (s *Store) CachedUpdate() (*api.CachedUpdate, error) {
	var out *api.CachedUpdate
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get(keyCached)
		if v == nil {
			return nil
		}
		out = &api.CachedUpdate{}
		return json.Unmarshal(v, out)
	})
	return out, err
}

// ErrNotSet is returned by Get for a missing setting.
var ErrNotSet = errors.New("setting not set")

// Set stores a small setting.
func (s *Store) Set(key, value string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSettings).Put([]byte(key), []byte(value)) })
}

// SetAll stores several settings in one bbolt transaction: all or none.
func (s *Store) SetAll(kv map[string]string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSettings)
		for k, v := range kv {
			if err := b.Put([]byte(k), []byte(v)); err != nil {
				return fmt.Errorf("setting %s: %w", k, err)
			}
		}
		return nil
	})
}

// Delete removes a setting (absent is fine).
func (s *Store) Delete(key string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSettings).Delete([]byte(key)) })
}

// Get reads a setting.
func (s *Store) Get(key string) (string, error) {
	var out string
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSettings).Get([]byte(key))
		if v == nil {
			return fmt.Errorf("%s: %w", key, ErrNotSet)
		}
		out = string(v)
		return nil
	})
	return out, err
}

// SetVerdict records the boot verdict of a deployment (keyed by
// v.Deployment), replacing the previous one.
func (s *Store) SetVerdict(v api.BootVerdict) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVerdicts).Put([]byte(v.Deployment), b) })
	if err != nil {
		return fmt.Errorf("record boot verdict of %s: %w", v.Deployment, err)
	}
	return nil
}

// Verdicts returns the recorded boot verdicts by deployment.
func (s *Store) Verdicts() (map[string]api.BootVerdict, error) {
	out := map[string]api.BootVerdict{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketVerdicts).ForEach(func(k, v []byte) error {
			var bv api.BootVerdict
			if err := json.Unmarshal(v, &bv); err != nil {
				return fmt.Errorf("boot verdict of %s: %w", k, err)
			}
			out[string(k)] = bv
			return nil
		})
	})
	return out, err
}

// PruneVerdicts forgets the verdicts of deployments not in keep, so that
// a later deployment of the same name starts without a past.
func (s *Store) PruneVerdicts(keep map[string]bool) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketVerdicts)
		var gone [][]byte
		b.ForEach(func(k, _ []byte) error {
			if !keep[string(k)] {
				gone = append(gone, append([]byte(nil), k...))
			}
			return nil
		})
		for _, k := range gone {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}
