package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiles for performance work: OS_UPDATE_CPUPROFILE=FILE and
// OS_UPDATE_MEMPROFILE=FILE write pprof profiles of one command
// (`go tool pprof os-update FILE`). The heap profile is taken at exit.
func startProfiles() (stop func()) {
	var stops []func()
	if p := os.Getenv("OS_UPDATE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "os-update: cpu profile %s: %v\n", p, err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := os.Getenv("OS_UPDATE_MEMPROFILE"); p != "" {
		runtime.MemProfileRate = 64 << 10
		stops = append(stops, func() {
			f, err := os.Create(p)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "os-update: memory profile %s: %v\n", p, err)
			}
		})
	}
	return func() {
		for _, s := range stops {
			s()
		}
	}
}
