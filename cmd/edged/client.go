package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/edged-dev/edged/config"
)

// apiClient talks to a running node's HTTP API, as its configuration
// says: address, TLS and bearer token.
type apiClient struct {
	base  string
	token string
	http  *http.Client
}

func newAPIClient(cfg config.Config) (*apiClient, error) {
	host, port, err := net.SplitHostPort(cfg.HTTP.Addr)
	if err != nil {
		return nil, fmt.Errorf("http.addr: %w", err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1" // a node listening on every address answers here
	}
	c := &apiClient{base: "http://" + net.JoinHostPort(host, port), http: http.DefaultClient}
	if f := cfg.HTTP.TLSCertFile; f != "" {
		pemBytes, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert_file: %w", err)
		}
		tc, err := nodeTLSConfig(pemBytes, host)
		if err != nil {
			return nil, fmt.Errorf("http.tls_cert_file: %s: %w", f, err)
		}
		c.base = "https://" + net.JoinHostPort(host, port)
		c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	}
	if f := cfg.HTTP.TokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("http.token_file: %w", err)
		}
		c.token = strings.TrimSpace(string(b))
	}
	return c, nil
}

// nodeTLSConfig returns the client's TLS configuration for a node, dialled
// at host (a name or an IP), that serves the certificate (chain) certPEM,
// its http.tls_cert_file.
//
// The client dials the address the node listens on, which for a node on
// every address is 127.0.0.1, and a certificate is usually issued for the
// gateway's host name, not for that IP. Ordinary verification (chain and
// name) would refuse it, and a self-signed certificate has no chain to
// check at all. So the client pins: it accepts the server whose leaf
// certificate is byte for byte the first certificate of the node's own
// file. This is safe with InsecureSkipVerify, which only switches off the
// standard chain and name checks: crypto/tls still makes the server prove,
// in the handshake, that it holds the private key of the certificate it
// presents, and VerifyConnection, which runs regardless, refuses any
// certificate but the pinned one, the only one this client trusts.
//
// A server presenting another certificate (the file was renewed on disk
// but the node not yet restarted, or http.addr names another host) is
// verified as before: against the system's roots and the certificates of
// the file, for host. (Not for ConnectionState.ServerName: that is the SNI
// name, empty when host is an IP, which would skip the name check.)
func nodeTLSConfig(certPEM []byte, host string) (*tls.Config, error) {
	var pinned []byte
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, err
		}
		if pinned == nil {
			pinned = cert.Raw // the leaf, as the node's server takes it
		}
		roots.AddCert(cert)
	}
	if pinned == nil {
		return nil, errors.New("no PEM certificate in the file")
	}
	return &tls.Config{
		InsecureSkipVerify: true, // VerifyConnection verifies: see above
		VerifyConnection: func(cs tls.ConnectionState) error {
			certs := cs.PeerCertificates
			if len(certs) == 0 {
				return errors.New("the node presented no certificate")
			}
			if bytes.Equal(certs[0].Raw, pinned) {
				return nil
			}
			inter := x509.NewCertPool()
			for _, c := range certs[1:] {
				inter.AddCert(c)
			}
			_, err := certs[0].Verify(x509.VerifyOptions{
				DNSName:       host,
				Roots:         roots,
				Intermediates: inter,
			})
			if err != nil {
				return fmt.Errorf("the node's certificate is not the one in http.tls_cert_file, and: %w", err)
			}
			return nil
		},
	}, nil
}

// do sends a request and returns the response, which the caller closes.
// An answer other than 2xx is an error carrying the API's message.
func (c *apiClient) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the node's HTTP API at %s does not answer: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var e struct{ Error, Field string }
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(b))
		}
		if e.Field != "" {
			return nil, fmt.Errorf("%s (HTTP %d, field %s)", e.Error, resp.StatusCode, e.Field)
		}
		return nil, fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
	}
	return resp, nil
}

// printJSON copies a JSON answer to w, indented.
func printJSON(resp *http.Response, w io.Writer) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return fmt.Errorf("malformed answer: %w", err)
	}
	_, err = w.Write(out.Bytes())
	return err
}

// clientCommand implements get, put and status: each sends one request.
func clientCommand(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	type spec struct {
		synopsis, doc string
		nargs         int
		request       func(args []string) (method, path string, body []byte, err error)
	}
	specs := map[string]spec{
		"get": {"get [flags] NS/KEY", "Print the JSON document of a key of the running node.", 1,
			func(a []string) (string, string, []byte, error) {
				p, err := keyPath(a[0])
				return http.MethodGet, p, nil, err
			}},
		"put": {"put [flags] NS/KEY OP", "Apply an operation, given as JSON, to a key and print the key's new\n" +
			"document, e.g.: edged put app/visits '{\"type\":\"counter\",\"op\":\"inc\"}'", 2,
			func(a []string) (string, string, []byte, error) {
				p, err := keyPath(a[0])
				return http.MethodPost, p, []byte(a[1]), err
			}},
		"status": {"status [flags]", "Print the running node's status.", 0,
			func([]string) (string, string, []byte, error) { return http.MethodGet, "/v1/status", nil, nil }},
	}
	s := specs[name]
	fs := newFlagSet(name, s.synopsis, s.doc+"\n\nThe node's address, TLS and token come from its configuration.", stderr)
	flags := newDataFlags(fs, true)
	if err := parseArgs(fs, args, s.nargs); err != nil {
		return err
	}
	cfg, err := flags.load()
	if err != nil {
		return err
	}
	c, err := newAPIClient(cfg)
	if err != nil {
		return err
	}
	method, path, body, err := s.request(fs.Args())
	if err != nil {
		return err
	}
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return printJSON(resp, stdout)
}

// keyPath returns the API path of "ns/key".
func keyPath(arg string) (string, error) {
	ns, key, ok := strings.Cut(arg, "/")
	if !ok || ns == "" || key == "" {
		return "", fmt.Errorf("%q: want NS/KEY, such as app/door", arg)
	}
	// Escaped whole, '/' included: the server would clean "a/../b".
	return "/v1/kv/" + ns + "/" + url.PathEscape(key), nil
}
