package ostreecli

var (
	runAdmin       = notImplemented("admin")
	runPullLocal   = notImplemented("pull-local")
	runPull        = notImplemented("pull")
	runRemote      = notImplemented("remote")
	runStaticDelta = notImplemented("static-delta")
	runSummary     = notImplemented("summary")
)
