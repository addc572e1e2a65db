// Package solve picks the set of packages to install: a deterministic
// backtracking dependency solver over rpm-md package metadata, with
// versioned requires/provides, file requires, obsoletes, conflicts, arch
// preference and rich (boolean) dependencies.
package solve

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
)

// Options control a solve.
type Options struct {
	// Arches lists acceptable architectures, most preferred first;
	// packages of other architectures are ignored. Default: x86_64, noarch.
	Arches []string
	// Exclude drops packages whose name matches one of these globs.
	Exclude []string
	// Locked pins names to exact versions: name → "[epoch:]version-release.arch".
	Locked map[string]string
	// Recommends also installs weak dependencies when they can be.
	Recommends bool
	// MaxSteps bounds the search (0: 1,000,000 candidate tries).
	MaxSteps int
	// Installed are packages already on the system (a base tree): they
	// provide, conflict and require like chosen packages, whatever
	// Arches and Exclude say, are never replaced, and are not part of
	// Result.Install. Their own requirements must stay satisfied.
	Installed []*rpmmd.Package
}

// Result is a solved transaction.
type Result struct {
	// Install is every package, in install order (requirements first,
	// ties by name).
	Install []*rpmmd.Package
	// Satisfied maps requests that Installed packages already satisfy
	// (and that were therefore dropped) to the package satisfying them.
	Satisfied map[string]*rpmmd.Package
}

// Error is a solve failure; Problems say what is missing or clashing and
// who needs it.
type Error struct{ Problems []string }

func (e *Error) Error() string {
	return "cannot solve dependencies:\n  " + strings.Join(e.Problems, "\n  ")
}

type provide struct {
	pkg *rpmmd.Package
	dep rpmmd.Dep
}

type solver struct {
	ctx      context.Context
	opts     Options
	archRank map[string]int
	byName   map[string][]*rpmmd.Package
	provides map[string][]provide
	files    map[string][]*rpmmd.Package
	// obsoleters lists, per package name, the packages obsoleting it
	// (best first).
	obsoleters map[string][]*rpmmd.Package
	parsed     map[string]*expr // rich dependency cache by text
	steps      int

	base map[*rpmmd.Package]bool // Options.Installed

	// state
	installed map[string]*rpmmd.Package // by name
	order     []*rpmmd.Package          // insertion order
	rich      []*rpmmd.Package          // installed packages with rich requires
	requests  []*expr
	reqNames  []string

	missing  []string // first "nothing provides" problems seen
	clashes  []string // first conflict problems seen
	deepest  int
	deepProb string
}

var errTooHard = errors.New("dependency search exceeded its step limit")

// Solve resolves requests (package names, provides, file paths, or
// "name OP version") against pool.
func Solve(ctx context.Context, pool []*rpmmd.Package, requests []string, opts Options) (*Result, error) {
	if len(opts.Arches) == 0 {
		opts.Arches = []string{"x86_64", "noarch"}
	}
	if opts.MaxSteps == 0 {
		opts.MaxSteps = 1_000_000
	}
	s := &solver{
		ctx: ctx, opts: opts, archRank: map[string]int{},
		byName: map[string][]*rpmmd.Package{}, provides: map[string][]provide{},
		files: map[string][]*rpmmd.Package{}, parsed: map[string]*expr{},
		obsoleters: map[string][]*rpmmd.Package{},
		installed:  map[string]*rpmmd.Package{},
		base:       map[*rpmmd.Package]bool{},
	}
	for i, a := range opts.Arches {
		s.archRank[a] = i
	}
	if err := s.index(pool); err != nil {
		return nil, err
	}
	for _, p := range opts.Installed {
		s.indexPackage(p)
		s.base[p] = true
		s.add(p)
	}
	satisfied := map[string]*rpmmd.Package{}
	for _, r := range requests {
		e, err := parseRequest(r)
		if err != nil {
			return nil, err
		}
		if len(opts.Installed) > 0 && s.eval(e) {
			if sat := s.installedSatisfiers(e); len(sat) > 0 {
				satisfied[r] = sat[0]
			}
			continue
		}
		if len(s.providers(e.dep)) == 0 {
			return nil, &Error{Problems: []string{fmt.Sprintf("no package provides %q (requested)", r)}}
		}
		s.requests = append(s.requests, e)
		s.reqNames = append(s.reqNames, r)
	}
	err := s.search(0, cursor{})
	if err != nil {
		return nil, s.failure(err)
	}
	if opts.Recommends {
		if err := s.addRecommends(); err != nil {
			return nil, err
		}
	}
	var install []*rpmmd.Package
	for _, p := range s.installOrder() {
		if !s.base[p] {
			install = append(install, p)
		}
	}
	return &Result{Install: install, Satisfied: satisfied}, nil
}

func parseRequest(r string) (*expr, error) {
	f := strings.Fields(r)
	switch len(f) {
	case 1:
		return &expr{dep: rpmmd.Dep{Name: f[0]}}, nil
	case 3:
		fl, err := rpmver.ParseFlags(f[1])
		if err != nil || fl == 0 {
			return nil, fmt.Errorf("bad package request %q", r)
		}
		evr, err := rpmver.Parse(f[2])
		if err != nil {
			return nil, fmt.Errorf("bad package request %q: %w", r, err)
		}
		return &expr{dep: rpmmd.Dep{Name: f[0], Flags: fl, EVR: evr}}, nil
	}
	return nil, fmt.Errorf("bad package request %q", r)
}

func lockKey(p *rpmmd.Package) string { return p.EVR.String() + "." + p.Arch }

func (s *solver) index(pool []*rpmmd.Package) error {
	seenLock := map[string]bool{}
	for _, p := range pool {
		if _, ok := s.archRank[p.Arch]; !ok {
			continue
		}
		excluded := false
		for _, g := range s.opts.Exclude {
			if ok, _ := path.Match(g, p.Name); ok {
				excluded = true
				break
			}
		}
		if excluded {
			continue
		}
		if want, ok := s.opts.Locked[p.Name]; ok {
			if lockKey(p) != want {
				continue
			}
			seenLock[p.Name] = true
		}
		s.indexPackage(p)
	}
	for name, l := range s.obsoleters {
		sort.SliceStable(l, func(i, j int) bool { return s.better(name)(l[i], l[j]) })
	}
	var missing []string
	for name := range s.opts.Locked {
		if !seenLock[name] {
			missing = append(missing, fmt.Sprintf("locked package %s-%s is not available", name, s.opts.Locked[name]))
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return &Error{Problems: missing}
	}
	return nil
}

func (s *solver) indexPackage(p *rpmmd.Package) {
	s.byName[p.Name] = append(s.byName[p.Name], p)
	self := false
	for _, d := range p.Provides {
		s.provides[d.Name] = append(s.provides[d.Name], provide{p, d})
		if d.Name == p.Name {
			self = true
		}
	}
	if !self { // every package provides its own name at its version
		s.provides[p.Name] = append(s.provides[p.Name], provide{p, rpmmd.Dep{Name: p.Name, Flags: rpmver.EQ, EVR: p.EVR}})
	}
	for _, f := range p.Files {
		s.files[f] = append(s.files[f], p)
	}
	for _, d := range p.Obsoletes {
		if l := s.obsoleters[d.Name]; len(l) == 0 || l[len(l)-1] != p {
			s.obsoleters[d.Name] = append(l, p)
		}
	}
}

// label names a package in messages; installed ones are "base package".
func (s *solver) label(p *rpmmd.Package) string {
	if s.base[p] {
		return "base package " + p.NEVRA()
	}
	return p.NEVRA()
}

// better orders candidate packages: the best first.
func (s *solver) better(want string) func(a, b *rpmmd.Package) bool {
	return func(a, b *rpmmd.Package) bool {
		if (a.Name == want) != (b.Name == want) {
			return a.Name == want
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		if c := rpmver.CompareEVR(a.EVR, b.EVR); c != 0 {
			return c > 0
		}
		if s.archRank[a.Arch] != s.archRank[b.Arch] {
			return s.archRank[a.Arch] < s.archRank[b.Arch]
		}
		if a.Repo != nil && b.Repo != nil && a.Repo.Config.ID != b.Repo.Config.ID {
			return a.Repo.Config.ID < b.Repo.Config.ID
		}
		return a.Location < b.Location
	}
}

// providers returns the packages that provide d, best first, without
// duplicates.
func (s *solver) providers(d rpmmd.Dep) []*rpmmd.Package {
	var out []*rpmmd.Package
	seen := map[*rpmmd.Package]bool{}
	for _, pr := range s.provides[d.Name] {
		if seen[pr.pkg] {
			continue
		}
		if d.Flags == 0 || rpmver.Overlap(pr.dep.Flags, pr.dep.EVR, d.Flags, d.EVR) {
			seen[pr.pkg] = true
			out = append(out, pr.pkg)
		}
	}
	if strings.HasPrefix(d.Name, "/") {
		for _, p := range s.files[d.Name] {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return s.better(d.Name)(out[i], out[j]) })
	return out
}

// provides reports whether p provides d.
func (s *solver) pkgProvides(p *rpmmd.Package, d rpmmd.Dep) bool {
	for _, pr := range s.provides[d.Name] {
		if pr.pkg == p && (d.Flags == 0 || rpmver.Overlap(pr.dep.Flags, pr.dep.EVR, d.Flags, d.EVR)) {
			return true
		}
	}
	if strings.HasPrefix(d.Name, "/") {
		for _, q := range s.files[d.Name] {
			if q == p {
				return true
			}
		}
	}
	return false
}

func (s *solver) installedProvides(d rpmmd.Dep) bool {
	for _, pr := range s.provides[d.Name] {
		if s.installed[pr.pkg.Name] == pr.pkg && (d.Flags == 0 || rpmver.Overlap(pr.dep.Flags, pr.dep.EVR, d.Flags, d.EVR)) {
			return true
		}
	}
	if strings.HasPrefix(d.Name, "/") {
		for _, q := range s.files[d.Name] {
			if s.installed[q.Name] == q {
				return true
			}
		}
	}
	return false
}

func (s *solver) expr(d rpmmd.Dep) *expr {
	if !strings.HasPrefix(d.Name, "(") {
		return &expr{dep: d}
	}
	if e, ok := s.parsed[d.Name]; ok {
		return e
	}
	e, err := parseDep(d)
	if err != nil {
		// An unparsable rich dependency can never be satisfied; keep it
		// as a leaf so the error names it.
		e = &expr{dep: d}
	}
	s.parsed[d.Name] = e
	return e
}

func (s *solver) eval(e *expr) bool {
	switch e.op {
	case "":
		return s.installedProvides(e.dep)
	case "and":
		for _, a := range e.args {
			if !s.eval(a) {
				return false
			}
		}
		return true
	case "or":
		for _, a := range e.args {
			if s.eval(a) {
				return true
			}
		}
		return false
	case "if":
		if s.eval(e.args[1]) {
			return s.eval(e.args[0])
		}
		return len(e.args) < 3 || s.eval(e.args[2])
	case "unless":
		if !s.eval(e.args[1]) {
			return s.eval(e.args[0])
		}
		return len(e.args) < 3 || s.eval(e.args[2])
	case "with", "without":
		for _, p := range s.order {
			if s.withMatch(e, p) {
				return true
			}
		}
		return false
	}
	return false
}

// withMatch: one package satisfying every operand of "with", or the first
// but not the second of "without".
func (s *solver) withMatch(e *expr, p *rpmmd.Package) bool {
	for i, a := range e.args {
		if a.op != "" {
			return false // only plain operands are meaningful here
		}
		ok := s.pkgProvides(p, a.dep)
		if e.op == "without" && i > 0 {
			ok = !ok
		}
		if !ok {
			return false
		}
	}
	return true
}

// cands returns packages whose installation moves e towards satisfied.
func (s *solver) cands(e *expr) []*rpmmd.Package {
	switch e.op {
	case "":
		return s.providers(e.dep)
	case "and":
		for _, a := range e.args {
			if !s.eval(a) {
				return s.cands(a)
			}
		}
	case "or":
		var out []*rpmmd.Package
		seen := map[*rpmmd.Package]bool{}
		for _, a := range e.args {
			for _, p := range s.cands(a) {
				if !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
		return out
	case "if":
		if s.eval(e.args[1]) {
			return s.cands(e.args[0])
		}
		if len(e.args) == 3 {
			return s.cands(e.args[2])
		}
	case "unless":
		if !s.eval(e.args[1]) {
			return s.cands(e.args[0])
		}
		if len(e.args) == 3 {
			return s.cands(e.args[2])
		}
	case "with", "without":
		if e.args[0].op != "" {
			return nil
		}
		var out []*rpmmd.Package
		for _, p := range s.providers(e.args[0].dep) {
			if s.withMatch(e, p) {
				out = append(out, p)
			}
		}
		return out
	}
	return nil
}

// obligation is the first unsatisfied requirement, in a fixed order:
// requests first, then each installed package's requires.
type obligation struct {
	e      *expr
	by     *rpmmd.Package // nil for a request
	reqIdx int
}

// cursor marks how far the plain requirements of installed packages are
// known to be satisfied. Adding packages never breaks a plain requirement
// and backtracking restores the exact earlier state, so each search level
// resumes from its parent's cursor instead of rescanning everything.
type cursor struct{ pkg, req int }

func (s *solver) firstUnsatisfied(cur cursor) (*obligation, cursor) {
	for i, r := range s.requests {
		if !s.eval(r) {
			return &obligation{e: r, reqIdx: i}, cur
		}
	}
	// Rich requirements can turn unsatisfied as packages are added (the
	// condition of an "if" becoming true), so they are always rechecked.
	for _, p := range s.rich {
		for _, d := range p.Requires {
			if strings.HasPrefix(d.Name, "(") {
				if e := s.expr(d); !s.eval(e) {
					return &obligation{e: e, by: p}, cur
				}
			}
		}
	}
	for pi := cur.pkg; pi < len(s.order); pi++ {
		p := s.order[pi]
		ri := 0
		if pi == cur.pkg {
			ri = cur.req
		}
		for ; ri < len(p.Requires); ri++ {
			d := p.Requires[ri]
			if strings.HasPrefix(d.Name, "rpmlib(") || strings.HasPrefix(d.Name, "(") {
				continue // rpmlib(): provided by rpm itself; rich: above
			}
			if e := s.expr(d); !s.eval(e) {
				return &obligation{e: e, by: p}, cursor{pi, ri}
			}
		}
	}
	return nil, cursor{len(s.order), 0}
}

func (o *obligation) who(s *solver) string {
	if o.by == nil {
		return "requested " + s.reqNames[o.reqIdx]
	}
	return s.label(o.by)
}

// clash explains why p cannot join the installed set, or returns "".
func (s *solver) clash(p *rpmmd.Package) string {
	if q := s.installed[p.Name]; q != nil {
		if s.base[q] {
			return fmt.Sprintf("%s is installed (a base package is not upgraded by installing another version; replace it with an override)", s.label(q))
		}
		return fmt.Sprintf("%s is already chosen", q.NEVRA())
	}
	for _, q := range s.order {
		for _, d := range p.Conflicts {
			if s.conflictMatches(d, q) {
				return fmt.Sprintf("%s conflicts with %s (%s)", p.NEVRA(), s.label(q), d)
			}
		}
		for _, d := range q.Conflicts {
			if s.conflictMatches(d, p) {
				return fmt.Sprintf("%s conflicts with %s (%s)", s.label(q), p.NEVRA(), d)
			}
		}
		for _, d := range p.Obsoletes {
			if obsoletes(d, q) {
				return fmt.Sprintf("%s obsoletes %s", p.NEVRA(), s.label(q))
			}
		}
		for _, d := range q.Obsoletes {
			if obsoletes(d, p) {
				return fmt.Sprintf("%s obsoletes %s", s.label(q), p.NEVRA())
			}
		}
	}
	return ""
}

func (s *solver) conflictMatches(d rpmmd.Dep, q *rpmmd.Package) bool {
	if strings.HasPrefix(d.Name, "(") {
		return false // rich conflicts are checked on the whole set
	}
	return s.pkgProvides(q, d)
}

// obsoletes matches package names (not provides), as rpm does.
func obsoletes(d rpmmd.Dep, q *rpmmd.Package) bool {
	if d.Name != q.Name {
		return false
	}
	return rpmver.Satisfies(&q.EVR, d.Flags, d.EVR)
}

func (s *solver) richConflict() string {
	for _, p := range s.order {
		for _, d := range p.Conflicts {
			if strings.HasPrefix(d.Name, "(") && s.eval(s.expr(d)) {
				return fmt.Sprintf("%s conflicts with %s", s.label(p), d.Name)
			}
		}
	}
	return ""
}

func (s *solver) add(p *rpmmd.Package) {
	s.installed[p.Name] = p
	s.order = append(s.order, p)
	for _, d := range p.Requires {
		if strings.HasPrefix(d.Name, "(") {
			s.rich = append(s.rich, p)
			break
		}
	}
}

// remove undoes the last add.
func (s *solver) remove(p *rpmmd.Package) {
	delete(s.installed, p.Name)
	s.order = s.order[:len(s.order)-1]
	if n := len(s.rich); n > 0 && s.rich[n-1] == p {
		s.rich = s.rich[:n-1]
	}
}

func (s *solver) note(depth int, missing bool, msg string) {
	if missing {
		if len(s.missing) < 5 && !contains(s.missing, msg) {
			s.missing = append(s.missing, msg)
		}
	} else if len(s.clashes) < 5 && !contains(s.clashes, msg) {
		s.clashes = append(s.clashes, msg)
	}
	if depth >= s.deepest {
		s.deepest, s.deepProb = depth, msg
	}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

var errUnsat = errors.New("unsatisfiable")

// search installs packages until nothing is unsatisfied, trying
// candidates best first and backtracking on dead ends.
func (s *solver) search(depth int, cur cursor) error {
	if err := s.ctx.Err(); err != nil {
		return err
	}
	ob, cur := s.firstUnsatisfied(cur)
	if ob == nil {
		if msg := s.richConflict(); msg != "" {
			s.note(depth, false, msg)
			return errUnsat
		}
		return nil
	}
	cands := s.cands(ob.e)
	if ob.by == nil {
		cands = s.preferObsoleters(cands)
	}
	if len(cands) == 0 {
		s.note(depth, true, fmt.Sprintf("nothing provides %s needed by %s", ob.e, ob.who(s)))
		return errUnsat
	}
	tried := 0
	for _, c := range cands {
		if msg := s.clash(c); msg != "" {
			s.note(depth, false, fmt.Sprintf("%s needed by %s: %s", ob.e, ob.who(s), msg))
			continue
		}
		s.steps++
		if s.steps > s.opts.MaxSteps {
			return errTooHard
		}
		tried++
		s.add(c)
		err := s.search(depth+1, cur)
		if err == nil {
			return nil
		}
		s.remove(c)
		if err != errUnsat {
			return err
		}
	}
	return errUnsat
}

// preferObsoleters puts packages that obsolete a requested package ahead
// of it, so that asking for an old name installs its replacement (as dnf
// does).
func (s *solver) preferObsoleters(cands []*rpmmd.Package) []*rpmmd.Package {
	var first, rest []*rpmmd.Package
	seen := map[*rpmmd.Package]bool{}
	for _, c := range cands {
		for _, q := range s.obsoleters[c.Name] {
			if q.Name == c.Name || seen[q] {
				continue
			}
			for _, d := range q.Obsoletes {
				if obsoletes(d, c) {
					seen[q] = true
					first = append(first, q)
					break
				}
			}
		}
	}
	for _, c := range cands {
		if !seen[c] {
			rest = append(rest, c)
		}
	}
	return append(first, rest...)
}

func (s *solver) failure(err error) error {
	if err != errUnsat {
		return fmt.Errorf("solve: %w", err)
	}
	var probs []string
	probs = append(probs, s.missing...)
	if len(probs) == 0 {
		probs = append(probs, s.clashes...)
	}
	if len(probs) == 0 {
		probs = []string{s.deepProb}
	}
	return &Error{Problems: probs}
}

// addRecommends installs weak dependencies that fit, best effort.
func (s *solver) addRecommends() error {
	done := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for i := 0; i < len(s.order); i++ {
			p := s.order[i]
			for _, d := range p.Recommends {
				key := p.NEVRA() + "\x00" + d.Name
				if done[key] {
					continue
				}
				done[key] = true
				e := s.expr(d)
				if s.eval(e) {
					continue
				}
				for _, c := range s.cands(e) {
					if s.clash(c) != "" {
						continue
					}
					mark := len(s.order)
					s.add(c)
					err := s.search(0, cursor{})
					if err == nil {
						changed = true
						break
					}
					if err != errUnsat {
						return s.failure(err)
					}
					for len(s.order) > mark {
						s.remove(s.order[len(s.order)-1])
					}
				}
			}
		}
	}
	return nil
}

// installOrder sorts the chosen packages so that each comes after what it
// requires (pre-requires weigh first), breaking cycles and ties by name.
func (s *solver) installOrder() []*rpmmd.Package {
	pkgs := append([]*rpmmd.Package(nil), s.order...)
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].NEVRA() < pkgs[j].NEVRA() })
	deps := map[*rpmmd.Package][]*rpmmd.Package{}
	for _, p := range pkgs {
		seen := map[*rpmmd.Package]bool{}
		reqs := append([]rpmmd.Dep(nil), p.Requires...)
		sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].Pre && !reqs[j].Pre })
		for _, d := range reqs {
			for _, q := range s.installedSatisfiers(s.expr(d)) {
				if q != p && !seen[q] {
					seen[q] = true
					deps[p] = append(deps[p], q)
				}
			}
		}
	}
	var out []*rpmmd.Package
	state := map[*rpmmd.Package]int{} // 1 visiting, 2 done
	var visit func(p *rpmmd.Package)
	visit = func(p *rpmmd.Package) {
		if state[p] != 0 {
			return // done, or a cycle: break it here
		}
		state[p] = 1
		for _, q := range deps[p] {
			visit(q)
		}
		state[p] = 2
		out = append(out, p)
	}
	for _, p := range pkgs {
		visit(p)
	}
	return out
}

func (s *solver) installedSatisfiers(e *expr) []*rpmmd.Package {
	if e.op == "" {
		var out []*rpmmd.Package
		for _, p := range s.providers(e.dep) {
			if s.installed[p.Name] == p {
				out = append(out, p)
			}
		}
		return out
	}
	var out []*rpmmd.Package
	for _, a := range e.args {
		out = append(out, s.installedSatisfiers(a)...)
	}
	return out
}
