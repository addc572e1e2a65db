module github.com/osupdate/os-update

go 1.26.8

require (
	github.com/klauspost/compress v1.18.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
