// Package boot boots what os-update composes and deploys under qemu and
// drives os-update inside the guest: the end-to-end boot, upgrade,
// rollback and power-cut tests. A package of its own so that its minutes
// count against their own test timeout, not the other integration tests'.
package boot
