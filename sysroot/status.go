package sysroot

import (
	"fmt"
	"strings"
)

// Status is the one view of a sysroot's deployments and their roles.
// Rollback, undeploy, the daemon's status, cleanup and history, and
// `admin status` all read the roles from it, so they always agree.
//
// The roles follow libostree's ostree_sysroot_query_deployments_for (what
// `ostree admin status` marks) and rpm-ostree:
//
//   - Current is the deployment operations start from: the booted one,
//     else (an offline sysroot) the first boot-configured deployment.
//   - Default is what boots next: the staged deployment, else the first
//     boot-configured one.
//   - Pending is the first deployment of Current's stateroot listed
//     before the booted one (the staged one counts, being listed first):
//     an update that has not been booted yet. Offline nothing has been
//     booted, so it is the first deployment of the stateroot (the staged
//     one, else Current itself), as libostree answers offline.
//   - Rollback is the first deployment of Current's stateroot listed
//     after Current. Deployments of other stateroots are never the
//     rollback. (Offline libostree names none; here the default stands in
//     for the booted deployment, so that an offline sysroot can be rolled
//     back.)
type Status struct {
	// Deployments are in boot order, the staged one first.
	Deployments []*DeploymentStatus

	// The deployment of each role, nil when none has it.
	Booted, Current, Default, Staged, Pending, Rollback *Deployment
}

// DeploymentStatus is one deployment with its roles.
type DeploymentStatus struct {
	*Deployment
	Booted, Current, Default, Staged, Pending, Rollback bool
}

// Status computes the roles of the loaded deployments.
func (s *Sysroot) Status() *Status {
	st := &Status{Booted: s.Booted, Staged: s.Staged}
	var list []*Deployment
	if s.Staged != nil {
		list = append(list, s.Staged)
	}
	list = append(list, s.Deployments...)
	if len(list) > 0 {
		st.Default = list[0]
	}
	st.Current = s.Booted
	if st.Current == nil && len(s.Deployments) > 0 {
		st.Current = s.Deployments[0]
	}
	past := false
	for _, d := range list {
		switch {
		case st.Current == nil || d.OS != st.Current.OS:
		case d.same(st.Current):
			if st.Booted == nil && st.Pending == nil {
				st.Pending = d
			}
			past = true
		case !past && st.Pending == nil:
			st.Pending = d
		case past && st.Rollback == nil:
			st.Rollback = d
		}
	}
	for _, d := range list {
		st.Deployments = append(st.Deployments, &DeploymentStatus{Deployment: d,
			Booted: d == st.Booted, Current: d == st.Current, Default: d == st.Default,
			Staged: d == st.Staged, Pending: d == st.Pending, Rollback: d == st.Rollback})
	}
	return st
}

// Find returns the deployment a name identifies: CHECKSUM.SERIAL, or
// OS/CHECKSUM.SERIAL where the same name is deployed in two stateroots.
func (st *Status) Find(name string) (*DeploymentStatus, error) {
	osname, base, qualified := strings.Cut(name, "/")
	if !qualified {
		base, osname = name, ""
	}
	var found *DeploymentStatus
	for _, d := range st.Deployments {
		if d.Name() != base || (osname != "" && d.OS != osname) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("deployment %s is in stateroots %s and %s: name it as OS/%s", name, found.OS, d.OS, base)
		}
		found = d
	}
	if found == nil {
		return nil, fmt.Errorf("no deployment %s", name)
	}
	return found, nil
}

// RollbackTarget is what Rollback makes the default: the rollback
// deployment; if there is none but an update is pending, the booted
// deployment (so that rollback undoes the update), as rpm-ostree does.
func (st *Status) RollbackTarget() (*Deployment, error) {
	switch {
	case st.Rollback != nil:
		return st.Rollback, nil
	case st.Booted != nil && st.Pending != nil:
		return st.Booted, nil
	case st.Current == nil:
		return nil, fmt.Errorf("rollback: no deployment")
	}
	return nil, fmt.Errorf("rollback: no rollback deployment of %s (only %s is deployed)", st.Current.OS, st.Current.Name())
}
