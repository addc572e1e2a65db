package daemon

import (
	"context"

	"github.com/osupdate/os-update/daemon/api"
)

// Request is one mutating operation, decoded and validated from a D-Bus
// call. Kind selects the operation; the other fields are its arguments.
type Request struct {
	Kind                                           string // KindUpgrade, ...
	Refspec                                        string // rebase target "remote:ref"
	Revision                                       string // deploy target: version or checksum
	Install                                        []string
	Uninstall                                      []string
	OverrideRemove, OverrideReplace, OverrideReset []string
	OverrideResetAll                               bool
	DryRun                                         bool // PkgChange: solve and report only
	CleanupRPMCache                                bool
	KargsAppend                                    []string
	KargsDelete                                    []string
	KargsReplace                                   []string
	Check                                          bool
	Preview                                        bool
	DownloadOnly                                   bool
	AllowDowngrade                                 bool
	Insecure                                       bool // Rebase to an image: plain-HTTP loopback registry
	Stage                                          bool // deploy staged: finalize makes it the default at shutdown
	CleanupRollback, CleanupPending, CleanupCache  bool
	CleanupRefs                                    bool // remove remote refs no deployment follows
	Reboot                                         bool
	Automatic                                      bool // started by the automatic update policy
	// Verdicts are the recorded boot verdicts by deployment, filled in by
	// the daemon for a health check when it starts.
	Verdicts map[string]api.BootVerdict
	Apply    bool // automatic apply: stage, then the daemon reboots into it (window, delay, lock)
}

// Label is what the history and the transaction's Kind property call the
// request: the operation, refined for upgrades by what it was asked to do
// (check, preview, download, automatic-check, automatic-stage).
func (r Request) Label() string {
	if r.Kind != KindUpgrade {
		return r.Kind
	}
	prefix := ""
	if r.Automatic {
		prefix = "automatic-"
	}
	switch {
	case r.Check:
		return prefix + "check"
	case r.Preview:
		return prefix + "preview"
	case r.DownloadOnly:
		return prefix + "download"
	case r.Automatic && r.Apply:
		return prefix + "apply"
	case r.Automatic && r.Stage:
		return prefix + "stage"
	}
	return prefix + r.Kind
}

// Operation kinds; each maps to a polkit action org.osupdate.OSUpdate1.<kind>.
const (
	KindUpgrade   = "upgrade"
	KindRollback  = "rollback"
	KindRebase    = "rebase"
	KindDeploy    = "deploy"
	KindPkgChange = "pkgchange"
	KindKargs     = "kargs"
	KindCleanup   = "cleanup"
	// KindHealthCheck runs the boot health checks of the booted
	// deployment and acts on the verdict (docs/health.md).
	KindHealthCheck = "health-check"
)

// Result is what a finished operation reports.
type Result struct {
	From, To string // commits before and after, when it applies
	NoUpdate bool   // an upgrade found nothing new
	Cached   *api.CachedUpdate
	// Deployed reports that the boot configuration changed (reboot makes
	// sense only then).
	Deployed bool
	// Verdict is a health check's verdict; the daemon records it (also
	// when the operation returns an error: an unhealthy boot is one).
	Verdict *api.BootVerdict
	// Abandoned is the verdict on a default the boot loader gave up on
	// (it used up its boot tries and the boot loader fell back), recorded
	// before Verdict.
	Abandoned *api.BootVerdict
	// Note goes into the history entry next to the result (see
	// api.HistoryEntry.Note).
	Note string
}

// Reporter receives an operation's progress. It is safe for concurrent use.
type Reporter interface {
	// Stage starts a named stage ("download", "deploy", ...) and resets
	// the counters.
	Stage(name string)
	// Progress reports the figures of the current stage so far (Stage,
	// Rate and ETASeconds are filled in by the reporter); zero totals
	// are unknown.
	Progress(p api.Progress)
	// Message reports a line for the user.
	Message(msg string)
}

// Backend performs operations on the host. The daemon serializes calls to
// Run; Status may run concurrently with them. Implementations must honour
// ctx: on cancellation they stop within a second and leave no partial
// deployment behind (partial downloads may stay, to be resumed).
type Backend interface {
	Status(ctx context.Context) (api.Status, error)
	Run(ctx context.Context, req Request, rep Reporter) (Result, error)
	// DbDiff compares the package lists of two commits (revisions of the
	// sysroot's repository; "" picks the defaults documented for `db diff`).
	DbDiff(ctx context.Context, from, to string) (*api.PackageDiff, error)
	// Repair removes what a crash left behind (temporary files, partial
	// deployments); the daemon calls it at start, before serving.
	Repair(ctx context.Context) error
}
