package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edged-dev/edged/config"
)

// testCert is a certificate with its key, as a server presents it.
type testCert struct {
	der []byte
	key *ecdsa.PrivateKey
}

// newTestCert makes a certificate for dnsNames and ips (none: no SAN at
// all), signed by parent, or self-signed when parent is nil. Every one is a
// CA, so it can sign others.
func newTestCert(t testing.TB, cn string, dnsNames []string, ips []net.IP, parent *testCert) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		DNSNames: dnsNames, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		p, err := x509.ParseCertificate(parent.der)
		if err != nil {
			t.Fatal(err)
		}
		signer, signerKey = p, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{der: der, key: key}
}

// TestClientTrustsNodeCertificate: get/put/status/backup dial the node at
// 127.0.0.1 when it listens on every address, and trust its own
// certificate (http.tls_cert_file) whatever names it carries; any other
// certificate must pass ordinary verification for the address dialled.
func TestClientTrustsNodeCertificate(t *testing.T) {
	ca := newTestCert(t, "edged test CA", nil, nil, nil)
	byName := newTestCert(t, "gw.example", []string{"gw.example"}, nil, nil)
	noSAN := newTestCert(t, "gw", nil, nil, nil)
	impostor := newTestCert(t, "gw.example", []string{"gw.example"}, nil, nil)
	caSignedForIP := newTestCert(t, "gw", nil, []net.IP{net.IPv4(127, 0, 0, 1)}, &ca)
	caSignedForName := newTestCert(t, "gw.example", []string{"gw.example"}, nil, &ca)

	tests := []struct {
		name    string
		served  testCert
		file    []testCert // http.tls_cert_file: leaf first
		wantErr string     // substring; "" for success
	}{
		{name: "self-signed for the host name", served: byName, file: []testCert{byName}},
		{name: "self-signed without SAN", served: noSAN, file: []testCert{noSAN}},
		{name: "CA-signed leaf of the file", served: caSignedForName, file: []testCert{caSignedForName, ca}},
		{name: "another certificate for the name", served: impostor, file: []testCert{byName},
			wantErr: "not the one in http.tls_cert_file"},
		// The file was renewed but the node still serves the old one: the
		// old one is verified against the file's CA, for the IP dialled.
		{name: "other leaf of the file's CA for the IP", served: caSignedForIP, file: []testCert{caSignedForName, ca}},
		{name: "other leaf of the file's CA for another name", served: caSignedForName, file: []testCert{caSignedForIP, ca},
			wantErr: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pemFile []byte
			for _, c := range tt.file {
				pemFile = append(pemFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.der})...)
			}
			certFile := filepath.Join(t.TempDir(), "tls.crt")
			if err := os.WriteFile(certFile, pemFile, 0o600); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(`{"status":"ok"}`))
			}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{tt.served.der}, PrivateKey: tt.served.key}}}
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
			srv.StartTLS()
			defer srv.Close()
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())

			cfg := config.Default()
			cfg.HTTP.Addr = net.JoinHostPort("0.0.0.0", port) // http.addr: 0.0.0.0:PORT, as in docs/OPERATIONS.md
			cfg.HTTP.TLSCertFile = certFile
			c, err := newAPIClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.do(context.Background(), http.MethodGet, "/healthz", nil)
			if err == nil {
				resp.Body.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("client of a node serving its own certificate: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("client accepted a certificate it must refuse")
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not mention %q", err, tt.wantErr)
			}
		})
	}
}

// TestClientRefusesCertFileWithoutCertificate: a tls_cert_file that holds
// no certificate (a key, by mistake) is an error naming the setting.
func TestClientRefusesCertFileWithoutCertificate(t *testing.T) {
	f := filepath.Join(t.TempDir(), "tls.crt")
	if err := os.WriteFile(f, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.HTTP.TLSCertFile = f
	_, err := newAPIClient(cfg)
	if err == nil || !strings.Contains(err.Error(), "http.tls_cert_file") {
		t.Fatalf("newAPIClient = %v, want an error naming http.tls_cert_file", err)
	}
}
