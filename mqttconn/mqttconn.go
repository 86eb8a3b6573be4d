// Package mqttconn holds what edged's MQTT clients share: the paho options
// for a broker URL with its credentials and TLS settings, and a first
// connection retried with backoff. The local MQTT interface (client mode),
// the cloud uplink and the aggregator use it.
package mqttconn

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Timeouts every client uses.
const (
	// Timeout bounds connecting, subscribing and writing a packet.
	Timeout = 10 * time.Second
	// KeepAlive is the MQTT keep-alive a client asks the broker for.
	KeepAlive = 30 * time.Second
	// firstRetry is the first wait between attempts to connect.
	firstRetry = time.Second
)

// Broker says how to reach and log in to a broker.
type Broker struct {
	// URL is tcp://host:1883 (also mqtt://), ssl://host:8883 (also
	// tls://, mqtts://), ws://host/path or wss://host/path.
	URL string
	// Username, when not empty, is the user name to log in with, and
	// PasswordFile the file holding its password.
	Username, PasswordFile string
	// CAFile is a PEM file of the authorities that sign the broker's
	// certificate (TLS only); empty means the system's roots.
	CAFile string
	// CertFile and KeyFile are a client certificate and its key (TLS
	// only); empty means none.
	CertFile, KeyFile string
	// ReconnectMaxInterval bounds the wait between connection attempts.
	ReconnectMaxInterval time.Duration
}

// TLS reports whether the URL's scheme asks for TLS.
func (b Broker) TLS() bool {
	u, err := url.Parse(b.URL)
	if err != nil {
		return false
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "wss":
		return true
	}
	return false
}

// Validate checks the URL's scheme and that the TLS files are set only
// with TLS; it reads no file. Errors name the field by its YAML name.
func (b Broker) Validate() error {
	u, err := url.Parse(b.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	var errs []error
	switch u.Scheme {
	case "tcp", "mqtt", "ws", "ssl", "tls", "mqtts", "wss":
	default:
		errs = append(errs, fmt.Errorf("url: scheme must be tcp, mqtt, ws, ssl, tls, mqtts or wss (got %q)", b.URL))
	}
	if u.Host == "" {
		errs = append(errs, fmt.Errorf("url: no host in %q", b.URL))
	}
	if !b.TLS() && (b.CAFile != "" || b.CertFile != "") {
		errs = append(errs, errors.New("ca_file, cert_file: need a TLS URL (ssl://, tls://, mqtts:// or wss://)"))
	}
	if (b.CertFile == "") != (b.KeyFile == "") {
		errs = append(errs, errors.New("cert_file, key_file: set both or neither"))
	}
	if b.PasswordFile != "" && b.Username == "" {
		errs = append(errs, errors.New("password_file: needs a username"))
	}
	if b.ReconnectMaxInterval <= 0 {
		errs = append(errs, fmt.Errorf("reconnect_max_interval: must be positive (got %s)", b.ReconnectMaxInterval))
	}
	return errors.Join(errs...)
}

// Options returns paho options for the broker: MQTT 3.1.1, a persistent
// session (clean session off) under clientID with in-flight messages kept
// in memory (store), automatic reconnection after a first connection, and
// the credentials and TLS settings. It reads the password, CA and
// certificate files.
func (b Broker) Options(clientID string) (*paho.ClientOptions, error) {
	opts := paho.NewClientOptions().
		AddBroker(b.URL).
		SetClientID(clientID).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetStore(newStore()). // copies, not shared packets: see store
		SetAutoReconnect(true).
		SetConnectRetry(false). // the first connection is retried by Dial, which stops with its context
		SetMaxReconnectInterval(b.ReconnectMaxInterval).
		SetConnectTimeout(Timeout).
		SetWriteTimeout(Timeout).
		SetKeepAlive(KeepAlive)
	if b.Username != "" {
		opts.SetUsername(b.Username)
	}
	if b.PasswordFile != "" {
		pw, err := ReadSecret(b.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %w", err)
		}
		opts.SetPassword(string(pw))
	}
	if _, err := url.Parse(b.URL); err != nil {
		return nil, fmt.Errorf("url: %w", err)
	}
	if !b.TLS() {
		return opts, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CAFile != "" {
		pem, err := os.ReadFile(b.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file: no PEM certificate in %s", b.CAFile)
		}
	}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.CertFile, b.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file, key_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	opts.SetTLSConfig(tc)
	return opts, nil
}

// ReadSecret returns the contents of the file at path without one
// trailing newline ("\n" or "\r\n"). An empty secret is an error.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte("\n"))
	b = bytes.TrimSuffix(b, []byte("\r"))
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return b, nil
}

// Dial connects c for the first time, retrying with exponential backoff
// (from 1s, doubling up to maxWait, ±20% jitter so that nodes restarted
// together do not retry together) until it succeeds or ctx is done. Once
// connected, paho reconnects by itself.
func Dial(ctx context.Context, c paho.Client, broker string, maxWait time.Duration, log *slog.Logger) {
	wait := firstRetry
	for {
		tok := c.Connect()
		select {
		case <-tok.Done():
		case <-ctx.Done():
			tok.WaitTimeout(Timeout) // lets paho's attempt end before the caller closes
			return
		}
		err := tok.Error()
		if err == nil {
			return
		}
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		log.Warn("mqtt connect failed", "broker", broker, "err", err, "retry_in", d.Round(time.Millisecond).String())
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
		wait = min(2*wait, maxWait)
	}
}

// DialInBackground runs Dial in a goroutine until it connects or ctx is
// done. stop ends the attempts and returns once Dial has returned, so the
// caller may then disconnect c.
func DialInBackground(ctx context.Context, c paho.Client, broker string, maxWait time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Dial(ctx, c, broker, maxWait, log)
	}()
	return func() {
		cancel()
		<-done
	}
}
