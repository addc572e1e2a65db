package sysroot

import (
	"context"
	"strings"
	"testing"
)

func roleNames(st *Status) map[string]string {
	name := func(d *Deployment) string {
		if d == nil {
			return ""
		}
		return d.OS + "/" + d.Name()
	}
	return map[string]string{"booted": name(st.Booted), "current": name(st.Current), "default": name(st.Default),
		"staged": name(st.Staged), "pending": name(st.Pending), "rollback": name(st.Rollback)}
}

// Offline, the rollback is the next deployment of the default's
// stateroot, not index 1 whatever its stateroot (the rule sysroot's
// Rollback used while the daemon used the stateroot's).
func TestStatusRolesTwoOSesOffline(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	if err := s.InitOS("other"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	t1 := s.Deployments[0]
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os", func(o *DeployOptions) { o.OS = "other" })
	o2 := s.Deployments[0]
	commitTree(t, s.Repo(), "os", treeSpec{version: "3"})
	deploy(t, s, "os")
	t3 := s.Deployments[0]
	// [t3, o2, t1]
	st := s.Status()
	got := roleNames(st)
	n := func(d *Deployment) string { return d.OS + "/" + d.Name() }
	// Offline nothing was booted: the default is also pending.
	want := map[string]string{"booted": "", "current": n(t3), "default": n(t3), "staged": "", "pending": n(t3), "rollback": n(t1)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(st.Deployments) != 3 || !st.Deployments[2].Rollback || st.Deployments[1].Rollback {
		t.Fatalf("per-deployment roles: %+v", st.Deployments)
	}
	// A staged deployment of the stateroot is pending and the default.
	commitTree(t, s.Repo(), "os", treeSpec{version: "4"})
	deploy(t, s, "os", func(o *DeployOptions) { o.Stage = true })
	st = s.Status()
	got = roleNames(st)
	if got["pending"] != n(s.Staged) || got["default"] != n(s.Staged) || got["current"] != n(t3) || got["rollback"] != n(t1) {
		t.Fatalf("with a staged deployment: %v", roleNames(st))
	}
	// Rollback makes t1 the default and discards the staged one.
	d, err := s.Rollback(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != t1.Name() || s.Staged != nil || s.Deployments[0].Name() != t1.Name() || s.Deployments[1].Name() != t3.Name() || s.Deployments[2].Name() != o2.Name() {
		t.Fatalf("rollback chose %s: %v", d.Name(), names(s))
	}
	// Now t1 is current and t3 its rollback.
	if st := s.Status(); st.Rollback == nil || st.Rollback.Name() != t3.Name() {
		t.Fatalf("after rollback: %v", roleNames(st))
	}
	checkConsistent(t, s)
}

// Undeploy names the deployment: removing one never shifts which one
// another name means; a name in two stateroots must be qualified.
func TestUndeployByName(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	if err := s.InitOS("other"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	c1 := commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	deploy(t, s, "os")
	deploy(t, s, "os", func(o *DeployOptions) { o.OS = "other" })
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"})
	deploy(t, s, "os")
	// [testos c2, other c1, testos c1]: c1.0 is in both stateroots.
	name := c1.String() + ".0"
	if _, err := s.Undeploy(ctx, name); err == nil || !strings.Contains(err.Error(), "OS/") {
		t.Fatalf("undeploy of an ambiguous name: %v", err)
	}
	if _, err := s.Undeploy(ctx, "testos/"+name); err != nil {
		t.Fatal(err)
	}
	if len(s.Deployments) != 2 || s.Deployments[1].OS != "other" || s.Deployments[1].Commit != c1 {
		t.Fatalf("after undeploy testos/%s: %v", name, names(s))
	}
	// Now the name is unique.
	if _, err := s.Undeploy(ctx, name); err != nil {
		t.Fatal(err)
	}
	if len(s.Deployments) != 1 {
		t.Fatalf("after undeploy %s: %v", name, names(s))
	}
	if _, err := s.Undeploy(ctx, s.Deployments[0].Name()); err == nil || !strings.Contains(err.Error(), "only deployment") {
		t.Fatalf("undeploy of the only deployment: %v", err)
	}
	// The staged deployment can be named too: it is discarded.
	commitTree(t, s.Repo(), "os", treeSpec{version: "3"})
	deploy(t, s, "os", func(o *DeployOptions) { o.Stage = true })
	if _, err := s.Undeploy(ctx, s.Staged.Name()); err != nil {
		t.Fatal(err)
	}
	if s.Staged != nil || len(s.Deployments) != 1 {
		t.Fatalf("after undeploy of the staged deployment: staged %v, %v", s.Staged, names(s))
	}
	checkConsistent(t, s)
	checkNoLeftovers(t, s)
}

// A resolved commit is deployed as is: no round trip through its text.
func TestDeployByCommit(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	c := commitTree(t, s.Repo(), "os", treeSpec{version: "1"})
	commitTree(t, s.Repo(), "os", treeSpec{version: "2"}) // the ref moves on
	res, err := s.Deploy(context.Background(), DeployOptions{OS: "testos", Rev: "os", Commit: c, OriginRefspec: "remote:os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deployment.Commit != c || s.Deployments[0].Refspec() != "remote:os" {
		t.Fatalf("deployed %s with origin %q, want %s", res.Deployment.Commit, s.Deployments[0].Refspec(), c)
	}
	res, err = s.Deploy(context.Background(), DeployOptions{OS: "testos", Commit: c})
	if err != nil {
		t.Fatal(err)
	}
	if s.Deployments[0].Refspec() != c.String() {
		t.Fatalf("origin of a commit deployed without a refspec: %q", s.Deployments[0].Refspec())
	}
}

// MakeDefault puts any boot-configured deployment first, the others in
// their order after it; a name that is not deployed changes nothing.
func TestMakeDefault(t *testing.T) {
	dir := t.TempDir()
	s := newSysroot(t, dir)
	ctx := context.Background()
	var ds []*Deployment
	for _, v := range []string{"1", "2", "3"} {
		commitTree(t, s.Repo(), "os", treeSpec{version: v})
		deploy(t, s, "os", func(o *DeployOptions) { o.Retain = true })
		ds = append(ds, s.Deployments[0])
	}
	// [3, 2, 1]
	if got := names(s); len(got) != 3 {
		t.Fatalf("deployments %v", got)
	}
	d, err := s.MakeDefault(ctx, ds[0].Name())
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != ds[0].Name() || s.Deployments[0].Name() != ds[0].Name() || s.Deployments[1].Name() != ds[2].Name() || s.Deployments[2].Name() != ds[1].Name() {
		t.Fatalf("MakeDefault(1): %v", names(s))
	}
	before := names(s)
	if _, err := s.MakeDefault(ctx, "0000.0"); err == nil || !strings.Contains(err.Error(), "no deployment 0000.0") {
		t.Fatalf("MakeDefault of an unknown name: %v", err)
	}
	if s2 := openSysroot(t, dir); strings.Join(names(s2), " ") != strings.Join(before, " ") {
		t.Fatalf("a refused MakeDefault changed the order: %v, was %v", names(s2), before)
	}
	checkConsistent(t, s)
}
