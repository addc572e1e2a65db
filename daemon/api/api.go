// Package api defines the contract between os-updated and its clients: bus
// names, interfaces, error names, method options, and the JSON documents
// `os-update status --json` and `history --json` print. Clients import this
// package only, never the daemon itself.
package api

// D-Bus names.
const (
	BusName          = "org.osupdate.OSUpdate1"
	ObjectPath       = "/org/osupdate/OSUpdate1"
	SysrootIface     = "org.osupdate.OSUpdate1.Sysroot"
	TransactionIface = "org.osupdate.OSUpdate1.Transaction"
	// SignalBootVerdict is the Sysroot signal sent when a boot health
	// check has a verdict: BootVerdict(s deployment, s verdict, s reason,
	// s action), the fields of the BootVerdict document.
	SignalBootVerdict = "BootVerdict"
	// TransactionPathPrefix is the namespace of transaction objects; a
	// client adds a match on it before calling a method, so no signal of
	// its transaction can be missed.
	TransactionPathPrefix = "/org/osupdate/OSUpdate1/Transaction"
)

// Error names returned by the daemon.
const (
	ErrBusy         = "org.osupdate.OSUpdate1.Error.Busy"
	ErrInvalidArgs  = "org.osupdate.OSUpdate1.Error.InvalidArgs"
	ErrFailed       = "org.osupdate.OSUpdate1.Error.Failed"
	ErrAccessDenied = "org.freedesktop.DBus.Error.AccessDenied"
)

// Values of a transaction's Outcome property once it finished successfully.
const (
	OutcomeNoUpdate = "no-update" // upgrade: nothing new
	OutcomeDeployed = "deployed"  // a new deployment is the default for the next boot
	OutcomeDone     = "done"      // anything else that succeeded
)

// Option keys accepted in the a{sv} argument of mutating methods. Unknown
// keys and wrong value types are refused with ErrInvalidArgs.
const (
	OptWait             = "wait"               // b: wait for a running transaction instead of failing with Busy
	OptReboot           = "reboot"             // b: reboot when the transaction succeeds
	OptCheckOnly        = "check"              // b (Upgrade): only look for an update
	OptPreview          = "preview"            // b (Upgrade): check and report package changes
	OptDownloadOnly     = "download-only"      // b (Upgrade): pull, do not deploy
	OptAllowDowngrade   = "allow-downgrade"    // b (Upgrade, Rebase): go to an older commit; Deploy accepts it and always may
	OptInsecure         = "insecure"           // b (Rebase): plain-HTTP image registry, loopback only; the origin keeps it for upgrades
	OptStage            = "stage"              // b (Upgrade): write the deployment; it becomes the default at shutdown (finalize)
	OptCleanupRollback  = "rollback"           // b (Cleanup): remove the rollback deployment
	OptCleanupPending   = "pending"            // b (Cleanup): remove the pending deployment
	OptCleanupCache     = "cache"              // b (Cleanup): remove cached metadata and partial pulls
	OptCleanupRefs      = "refs"               // b (Cleanup): remove remote refs no deployment follows
	OptCleanupRPMCache  = "rpm-cache"          // b (Cleanup): empty the package cache of layering
	OptDryRun           = "dry-run"            // b (PkgChange): solve and report, change nothing
	OptOverrideRemove   = "override-remove"    // as (PkgChange): remove base packages
	OptOverrideReplace  = "override-replace"   // as (PkgChange): replace base packages (local .rpm paths or NEVRAs)
	OptOverrideReset    = "override-reset"     // as (PkgChange): drop overrides of these packages
	OptOverrideResetAll = "override-reset-all" // b (PkgChange): drop every override
	OptKargsAppend      = "append"             // as (KernelArgs)
	OptKargsDelete      = "delete"             // as (KernelArgs)
	OptKargsReplace     = "replace"            // as (KernelArgs)
)

// Progress is the body of a transaction's Progress signal, signature
// ProgressSignature: the current stage and, for stages that transfer,
// what was received and what is expected (0: unknown). Bytes count every
// byte fetched in the stage (summaries, commits, delta superblocks and
// parts, objects); objects count the objects handled by the object walk
// (present or fetched) of ObjectsTotal discovered so far; parts count the
// static delta parts applied. Rate is in bytes per second over the stage,
// ETASeconds the time left at that rate (0: unknown).
type Progress struct {
	Stage         string
	BytesDone     uint64
	BytesExpected uint64
	ObjectsDone   uint64
	ObjectsTotal  uint64
	PartsDone     uint32
	PartsTotal    uint32
	Rate          uint64
	ETASeconds    uint64
}

// ProgressSignature is the D-Bus signature of the Progress signal.
const ProgressSignature = "sttttuutt"

// Args are the signal's arguments in order.
func (p Progress) Args() []any {
	return []any{p.Stage, p.BytesDone, p.BytesExpected, p.ObjectsDone, p.ObjectsTotal, p.PartsDone, p.PartsTotal, p.Rate, p.ETASeconds}
}

// ParseProgress decodes a Progress signal's body.
func ParseProgress(body []any) (Progress, bool) {
	var p Progress
	if len(body) != 9 {
		return p, false
	}
	var ok [9]bool
	p.Stage, ok[0] = body[0].(string)
	p.BytesDone, ok[1] = body[1].(uint64)
	p.BytesExpected, ok[2] = body[2].(uint64)
	p.ObjectsDone, ok[3] = body[3].(uint64)
	p.ObjectsTotal, ok[4] = body[4].(uint64)
	p.PartsDone, ok[5] = body[5].(uint32)
	p.PartsTotal, ok[6] = body[6].(uint32)
	p.Rate, ok[7] = body[7].(uint64)
	p.ETASeconds, ok[8] = body[8].(uint64)
	for _, o := range ok {
		if !o {
			return Progress{}, false
		}
	}
	return p, true
}

// Automatic update policies (os-updated --automatic-update-policy).
const (
	PolicyNone  = "none"  // the timer does nothing
	PolicyCheck = "check" // the timer checks and records an available update
	PolicyStage = "stage" // the timer downloads and stages the update; it applies at the next reboot
	// PolicyApply: as stage, then the daemon reboots into the update
	// inside the maintenance window, after a random delay, holding the
	// FleetLock reboot slot when a FleetLock server is configured.
	PolicyApply = "apply"
)

// Methods of the Sysroot interface added for automatic updates (the older
// ones are named in docs/daemon.md).
const (
	// MethodSetAutomaticUpdates (a{sv} settings) → (): change the
	// automatic update policy and window (Setting* keys); persisted.
	MethodSetAutomaticUpdates = "SetAutomaticUpdates"
)

// Keys of SetAutomaticUpdates(a{sv}); a key left out keeps its value.
const (
	SettingPolicy = "policy" // s: none, check, stage or apply
	SettingWindow = "window" // s: maintenance window (docs/daemon.md); "" means any time
)

// Signals of the Sysroot interface about updates, sent from ObjectPath
// (match on interface SysrootIface; BootVerdict, above, comes from the
// boot health check). Their argument lists are stable.
const (
	// SignalUpdateFound (s refspec, s checksum, s version): an update
	// check (manual or automatic) found a newer commit.
	SignalUpdateFound = "UpdateFound"
	// SignalUpdateStaged (s checksum, s version): the update is deployed
	// (staged or pending) and boots next.
	SignalUpdateStaged = "UpdateStaged"
	// SignalRebootScheduled (x at, s checksum, s reason): the daemon will
	// reboot into checksum at unix time at (once the FleetLock slot, if
	// configured, is held); sent again when the time changes, and with
	// reason "now" right before the reboot command runs.
	SignalRebootScheduled = "RebootScheduled"
)

// Reasons of RebootScheduled.
const (
	RebootReasonWindow = "window" // at is the next opening of the maintenance window plus the random delay
	RebootReasonDelay  = "delay"  // the window is open; at is now plus the random delay
	RebootReasonLock   = "lock"   // waiting for the FleetLock slot; at is the next try
	RebootReasonNow    = "now"    // the reboot command runs now
)

// Deployment is one entry of Status, as printed by `status --json`.
//
// It is the one schema of a deployment: `status --json`, `admin status
// --json` and GetStatus all print it (built by internal/deployinfo), and
// docs/json.md documents every field. Names are kebab-case and stable;
// fields are only ever added.
type Deployment struct {
	ID         string   `json:"id"` // OSNAME/CHECKSUM.SERIAL
	Index      int      `json:"index"`
	OSName     string   `json:"osname"`
	Checksum   string   `json:"checksum"`
	Serial     int      `json:"serial"`
	BootCsum   string   `json:"bootcsum"`
	BootSerial int      `json:"bootserial"`
	Origin     string   `json:"origin"` // refspec
	Version    string   `json:"version,omitempty"`
	Subject    string   `json:"subject,omitempty"` // the commit's subject line
	Timestamp  int64    `json:"timestamp"`
	Booted     bool     `json:"booted"`
	Staged     bool     `json:"staged"`
	Pinned     bool     `json:"pinned"`
	Default    bool     `json:"default"`
	Pending    bool     `json:"pending"`
	Rollback   bool     `json:"rollback"`
	Unlocked   string   `json:"unlocked"` // UnlockedNone, or libostree's "hotfix"/"development"
	Kargs      []string `json:"kargs"`
	Signatures []string `json:"signatures,omitempty"`
	Packages   []string `json:"requested-packages,omitempty"`
	// Package layering (a derived commit): the base commit, the packages
	// added (requested ones and their dependencies), the base packages
	// removed, and "OLD NEW" replacements.
	BaseChecksum string            `json:"base-checksum,omitempty"`
	Layered      []string          `json:"layered-packages,omitempty"`
	Removed      []string          `json:"removed-base-packages,omitempty"`
	Replaced     []string          `json:"replaced-base-packages,omitempty"`
	Extra        map[string]string `json:"extra,omitempty"`
	// An image-based deployment (rebased to a container image): the
	// image reference it follows and the manifest digest it came from.
	ContainerImageReference string `json:"container-image-reference,omitempty"`
	ContainerImageDigest    string `json:"container-image-digest,omitempty"`
	// BootVerdict is the last boot health check of this deployment, if
	// one ran (see docs/health.md).
	BootVerdict *BootVerdict `json:"boot-verdict,omitempty"`
	// BootTries is the boot loader's counting of this deployment's boots
	// (the default one, while it is on trial; see docs/boot.md).
	BootTries *BootTries `json:"boot-tries,omitempty"`
}

// BootTries is where the boot loader's counting of a new default stands.
type BootTries struct {
	Method string `json:"method"` // "grubenv" or "systemd-boot"
	Left   int    `json:"left"`   // tries left; 0: used up, the boot loader boots the next deployment
	Done   int    `json:"done,omitempty"`
}

// UnlockedNone is the unlocked state of a deployment whose /usr is
// read-only, as usual.
const UnlockedNone = "none"

// Verdicts of a boot health check.
const (
	VerdictHealthy   = "healthy"
	VerdictUnhealthy = "unhealthy"
)

// Actions taken on a verdict.
const (
	ActionMarkedGood = "marked-good" // healthy: the boot counts as good (boot counter cleared)
	ActionRolledBack = "rolled-back" // unhealthy: the previous deployment is the default, the machine reboots into it
	ActionNone       = "none"        // unhealthy but not rolled back; ActionDetail says why
)

// BootVerdict is the outcome of the health check of one boot of a
// deployment (`os-update health-check`).
type BootVerdict struct {
	// Deployment is OS/CHECKSUM.SERIAL.
	Deployment string `json:"deployment"`
	Checksum   string `json:"checksum"`
	Version    string `json:"version,omitempty"`
	Verdict    string `json:"verdict"`          // VerdictHealthy or VerdictUnhealthy
	Reason     string `json:"reason,omitempty"` // the failed check: script or unit, exit code, last lines of output
	Action     string `json:"action"`           // Action*
	// ActionDetail explains the action: where it rolled back to, or why
	// it did not.
	ActionDetail string `json:"action-detail,omitempty"`
	// RolledBackTo is the deployment made the default (OS/CHECKSUM.SERIAL).
	RolledBackTo string `json:"rolled-back-to,omitempty"`
	CheckedAt    int64  `json:"checked-at"`
	BootID       string `json:"boot-id,omitempty"`
	// Good is true once the deployment passed a check on some boot; a
	// good deployment is never rolled back automatically.
	Good bool `json:"good"`
}

// CachedUpdate is the result of the last update check.
type CachedUpdate struct {
	Refspec   string `json:"refspec"`
	Checksum  string `json:"checksum"`
	Version   string `json:"version,omitempty"`
	Timestamp int64  `json:"timestamp"`
	CheckedAt int64  `json:"checked-at"`
	Available bool   `json:"available"`
}

// Status is the document `os-update status --json` prints.
type Status struct {
	Deployments     []Deployment  `json:"deployments"`
	Transaction     string        `json:"transaction,omitempty"` // object path of the running one
	CachedUpdate    *CachedUpdate `json:"cached-update,omitempty"`
	AutomaticPolicy string        `json:"automatic-update-policy"`
	// Automatic is the automatic update configuration and the state of a
	// reboot the apply policy scheduled.
	Automatic *AutomaticStatus `json:"automatic-updates,omitempty"`
	// Warnings name damaged boot entries (see sysroot.Sysroot.Warnings).
	Warnings []string `json:"warnings,omitempty"`
}

// AutomaticStatus is the "automatic-updates" object of Status.
type AutomaticStatus struct {
	Policy         string `json:"policy"`
	Window         string `json:"window"` // "" means any time
	WindowOpen     bool   `json:"window-open"`
	NextWindow     int64  `json:"next-window,omitempty"` // unix time the window next opens (when closed)
	RandomDelay    int64  `json:"random-delay-seconds"`
	FleetLockURL   string `json:"fleetlock-url,omitempty"`
	FleetLockGroup string `json:"fleetlock-group,omitempty"`
	// FleetLockHeld: this machine holds its reboot slot (from before its
	// reboot until a healthy boot verdict releases it).
	FleetLockHeld bool `json:"fleetlock-held,omitempty"`
	// Reboot is set while the apply policy waits to reboot into a
	// staged update.
	Reboot *ScheduledReboot `json:"reboot,omitempty"`
}

// ScheduledReboot is a reboot the apply policy waits for.
type ScheduledReboot struct {
	Checksum string `json:"checksum"`
	At       int64  `json:"at"`     // unix time of the planned reboot or the next lock try
	Reason   string `json:"reason"` // RebootReason*
}

// HistoryEntry is one finished transaction.
type HistoryEntry struct {
	ID        uint64 `json:"id"`
	Kind      string `json:"kind"`
	CallerUID uint32 `json:"caller-uid"`
	Start     int64  `json:"start"`
	End       int64  `json:"end"`
	From      string `json:"from"` // "" when it does not apply
	To        string `json:"to"`
	Result    string `json:"result"` // "success", "failed", "cancelled", "interrupted"
	Error     string `json:"error"`
	// Note is what a transaction that succeeded wants remembered, such as
	// the update a boot loader gave up on that a health check abandoned.
	Note string `json:"note,omitempty"`
}

// Verdicts of Authorizations.Actions.
const (
	AuthYes       = "yes"       // the caller may do it
	AuthChallenge = "challenge" // polkit would ask the caller to authenticate first
	AuthNo        = "no"        // refused
)

// Authorizations is what GetAuthorizations returns: for each operation
// kind (the polkit action org.osupdate.OSUpdate1.<kind>), what the daemon
// would decide for the calling connection now.
type Authorizations struct {
	CallerUID uint32            `json:"caller-uid"`
	Actions   map[string]string `json:"actions"`          // kind -> AuthYes, AuthChallenge or AuthNo
	Reason    string            `json:"reason,omitempty"` // why some action is not AuthYes, for the user
}

// PackageDiff is what `os-update db diff --json` prints: the packages two
// commits differ in, from the package lists their composes recorded.
type PackageDiff struct {
	From       string          `json:"from"`
	To         string          `json:"to"`
	Added      []string        `json:"added"` // name-[epoch:]version-release.arch
	Removed    []string        `json:"removed"`
	Upgraded   []PackageChange `json:"upgraded"`
	Downgraded []PackageChange `json:"downgraded"`
}

// PackageChange is a package present in both commits at other versions.
type PackageChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}
