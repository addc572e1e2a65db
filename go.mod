module github.com/osupdate/os-update

go 1.26.8

require (
	github.com/ProtonMail/go-crypto v1.5.2
	github.com/cavaliergopher/cpio v1.0.1
	github.com/cavaliergopher/rpm v1.2.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/google/rpmpack v0.7.1
	github.com/klauspost/compress v1.18.0
	github.com/ulikunitz/xz v0.5.17
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.49.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/cloudflare/circl v1.6.3 // indirect
	github.com/klauspost/pgzip v1.2.6 // indirect
	golang.org/x/crypto v0.41.0 // indirect
)
