package solve

import (
	"context"
	"fmt"
	"testing"

	"github.com/osupdate/os-update/compose/rpmmd"
	"github.com/osupdate/os-update/compose/rpmver"
)

// BenchmarkSolveLarge: a distribution-sized install (2,000 packages from a
// pool of 6,000 with three versions each, ~6 requires per package, file and
// virtual provides).
func BenchmarkSolveLarge(b *testing.B) {
	const n = 2000
	var pool []*rpmmd.Package
	for i := 0; i < n; i++ {
		for v := 1; v <= 3; v++ {
			p := &rpmmd.Package{Name: fmt.Sprintf("pkg%04d", i), Arch: "noarch", EVR: rpmver.EVR{Version: fmt.Sprint(v), Release: "1"},
				Location: fmt.Sprintf("pkg%04d-%d.rpm", i, v)}
			p.Provides = []rpmmd.Dep{{Name: fmt.Sprintf("lib%04d.so", i)}}
			p.Files = []string{fmt.Sprintf("/usr/bin/tool%04d", i)}
			for k := 1; k <= 6 && i-k*7 >= 0; k++ {
				j := i - k*7
				switch k % 3 {
				case 0:
					p.Requires = append(p.Requires, rpmmd.Dep{Name: fmt.Sprintf("pkg%04d", j), Flags: rpmver.GT | rpmver.EQ, EVR: rpmver.EVR{Version: "1"}})
				case 1:
					p.Requires = append(p.Requires, rpmmd.Dep{Name: fmt.Sprintf("lib%04d.so", j)})
				default:
					p.Requires = append(p.Requires, rpmmd.Dep{Name: fmt.Sprintf("/usr/bin/tool%04d", j)})
				}
			}
			pool = append(pool, p)
		}
	}
	var req []string
	for i := n - 50; i < n; i++ {
		req = append(req, fmt.Sprintf("pkg%04d", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := Solve(context.Background(), pool, req, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			b.ReportMetric(float64(len(res.Install)), "installed")
		}
	}
}
