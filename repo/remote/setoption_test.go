package remote

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
)

func TestSetOption(t *testing.T) {
	var r Remote
	sets := [][2]string{
		{"url", "http://127.0.0.1:1/repo"},
		{"contenturl", "http://127.0.0.1:2/content"},
		{"gpg-verify", "false"},
		{"gpg-verify-summary", "true"},
		{"sign-verify", "1"},
		{"sign-verify-summary", "t"},
		{"tls-permissive", "TRUE"},
		{"gpgkeypath", "/a.gpg;;/b.d;"},
		{"branches", "os/x86_64;os/aarch64"},
		{"verification-ed25519-key", "S0VZ"},
		{"verification-ed25519-file", "/etc/keys/ed"},
		{"tls-ca-path", "/ca.pem"},
		{"tls-client-cert-path", "/cert.pem"},
		{"tls-client-key-path", "/key.pem"},
		{"collection-id", "org.example.Os"},
		{"x-custom", "a=b"},
		{"proxy", "http://proxy:3128"},
	}
	r.GPGVerify = true
	for _, kv := range sets {
		if err := r.SetOption(kv[0], kv[1], nil); err != nil {
			t.Fatalf("SetOption(%q, %q): %v", kv[0], kv[1], err)
		}
	}
	want := Remote{
		URL:               "http://127.0.0.1:1/repo",
		ContentURL:        "http://127.0.0.1:2/content",
		GPGVerify:         false,
		GPGVerifySummary:  true,
		SignVerify:        true,
		SignVerifySummary: true,
		TLSPermissive:     true,
		GPGKeyPath:        []string{"/a.gpg", "/b.d"},
		Branches:          []string{"os/x86_64", "os/aarch64"},
		Ed25519Keys:       []string{"S0VZ"},
		Ed25519File:       "/etc/keys/ed",
		TLSCAPath:         "/ca.pem",
		TLSClientCert:     "/cert.pem",
		TLSClientKey:      "/key.pem",
		CollectionID:      "org.example.Os",
		UnknownOptions:    map[string]string{"x-custom": "a=b", "proxy": "http://proxy:3128"},
	}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("after SetOption:\n got %+v\nwant %+v", r, want)
	}
	// Every key this package reads from a config file is settable, so
	// none of them lands in UnknownOptions.
	for k := range known {
		var x Remote
		if err := x.SetOption(k, "true", nil); err != nil {
			t.Fatalf("SetOption(%q): %v", k, err)
		}
		if _, ok := x.UnknownOptions[k]; ok {
			t.Errorf("known key %q kept as unknown", k)
		}
	}
}

func TestSetOptionBadBool(t *testing.T) {
	r := Remote{TLSPermissive: true}
	err := r.SetOption("tls-permissive", "yes", nil)
	var bad *BadBoolError
	if !errors.As(err, &bad) || bad.Key != "tls-permissive" || bad.Value != "yes" {
		t.Fatalf("got %v (%T), want a BadBoolError for tls-permissive=yes", err, err)
	}
	var numErr *strconv.NumError
	if !errors.As(err, &numErr) {
		t.Errorf("%v does not wrap the parser's error", err)
	}
	if !r.TLSPermissive {
		t.Error("a rejected value changed the option")
	}
	// The caller's parser decides which spellings are booleans.
	yes := func(s string) (bool, error) {
		if s == "yes" {
			return true, nil
		}
		return false, errors.New("no")
	}
	if err := r.SetOption("gpg-verify", "yes", yes); err != nil || !r.GPGVerify {
		t.Fatalf("custom parser: err %v, GPGVerify %v", err, r.GPGVerify)
	}
	if err := r.SetOption("gpg-verify", "true", yes); !errors.As(err, &bad) {
		t.Fatalf("custom parser rejecting true: %v", err)
	}
}
