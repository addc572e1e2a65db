package ostreecli

var (
	runStaticDelta = notImplemented("static-delta")
)
