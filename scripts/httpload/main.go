// Command httpload measures a node through its HTTP API, with the
// production write path (fsync durability, low-memory profile):
//
//	go run ./scripts/httpload -mode lines [-batch 5000] [-series 100] [-conns 4] [-duration 20s]
//	go run ./scripts/httpload -mode ops [-rate 1000] [-keys 64] [-duration 20s]
//
// Without -addr it starts a node of its own in a temporary data directory
// (HTTP on a free loopback port, MQTT off) and measures that; with -addr
// HOST:PORT it drives a node that is already running.
//
// lines posts InfluxDB line protocol to /api/v2/write in batches of -batch
// lines from -conns connections as fast as the node accepts them, each batch
// holding -series series with batch/series points each, and reports durable
// readings per second. It exits 1 below -min-rate.
//
// ops posts counter increments to -keys keys at a fixed rate (open loop:
// requests are sent on schedule whether or not earlier ones have returned)
// and reports latency percentiles. It exits 1 when p99 is over -max-p99.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edged-dev/edged/config"
	"github.com/edged-dev/edged/node"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "httpload:", err)
		os.Exit(1)
	}
}

func run() error {
	mode := flag.String("mode", "lines", "what to measure: lines or ops")
	addr := flag.String("addr", "", "HOST:PORT of a running node; empty starts one")
	duration := flag.Duration("duration", 20*time.Second, "how long to measure")
	batch := flag.Int("batch", 5000, "lines: lines per request")
	series := flag.Int("series", 100, "lines: series per batch")
	conns := flag.Int("conns", 4, "lines: concurrent requests")
	minRate := flag.Float64("min-rate", 150000, "lines: readings/s below which to exit 1")
	rate := flag.Int("rate", 1000, "ops: requests per second")
	keys := flag.Int("keys", 64, "ops: keys written in turn")
	maxP99 := flag.Duration("max-p99", 5*time.Millisecond, "ops: p99 above which to exit 1")
	flag.Parse()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if *addr == "" {
		a, stop, err := startNode(ctx)
		if err != nil {
			return err
		}
		defer stop()
		*addr = a
	}
	base := "http://" + *addr
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	switch *mode {
	case "lines":
		return lines(client, base, *duration, *batch, *series, *conns, *minRate)
	case "ops":
		return ops(client, base, *duration, *rate, *keys, *maxP99)
	}
	return fmt.Errorf("-mode %q: want lines or ops", *mode)
}

// startNode runs a node with production settings on a temporary data
// directory and returns its HTTP address and a function that stops it.
func startNode(ctx context.Context) (string, func(), error) {
	dir, err := os.MkdirTemp("", "httpload-")
	if err != nil {
		return "", nil, err
	}
	cfg := config.Default()
	cfg.Node.Name = "httpload"
	cfg.Node.DataDir = dir
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.MQTT.Mode = "off"
	cfg.Readings.TrustClock = true
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		cancel()
		return "", nil, err
	}
	fmt.Printf("node: data in %s, profile %s, durability %s\n", dir, cfg.Store.Profile, cfg.Store.Durability)
	return n.Addr().String(), func() {
		cancel()
		<-done
		os.RemoveAll(dir)
	}, nil
}

// post sends one request and fails unless the answer is 2xx.
func post(c *http.Client, url, contentType string, body []byte) error {
	resp, err := c.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return nil
}

func lines(c *http.Client, base string, d time.Duration, batch, series, conns int, minRate float64) error {
	if series < 1 || batch < series {
		return errors.New("-series must be from 1 to -batch")
	}
	var seq atomic.Int64
	seq.Store(time.Now().Add(-time.Hour).UnixNano())
	body := func() []byte {
		var b bytes.Buffer
		for p := range batch / series {
			t := seq.Add(1)
			for s := range series {
				fmt.Fprintf(&b, "env,host=gw%d,room=r%d temp=%d.%d %d\n", s%10, s, 20+p%5, s%10, t)
			}
		}
		return b.Bytes()
	}
	perBatch := (batch / series) * series
	url := base + "/api/v2/write?org=o&bucket=b&precision=ns"
	var sent atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				if err := post(c, url, "text/plain", body()); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				sent.Add(int64(perBatch))
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	secs := time.Since(start).Seconds()
	r := float64(sent.Load()) / secs
	fmt.Printf("lines: %d readings in %.1fs from %d connections, batches of %d lines (%d series): %.0f readings/s\n",
		sent.Load(), secs, conns, perBatch, series, r)
	if r < minRate {
		return fmt.Errorf("%.0f readings/s is below the target of %.0f", r, minRate)
	}
	return nil
}

func ops(c *http.Client, base string, d time.Duration, rate, keys int, maxP99 time.Duration) error {
	n := int(d.Seconds() * float64(rate))
	lat := make([]time.Duration, n)
	errs := make([]error, n)
	interval := time.Second / time.Duration(rate)
	body := []byte(`{"type":"counter","op":"inc"}`)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		// Open loop: request i leaves at start + i×interval.
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		wg.Go(func() {
			t := time.Now()
			errs[i] = post(c, base+"/v1/kv/load/k"+strconv.Itoa(i%keys), "application/json", body)
			lat[i] = time.Since(t)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(n-1, int(p*float64(n)))] }
	fmt.Printf("ops: %d counter increments on %d keys at %d/s (achieved %.0f/s): p50 %s, p90 %s, p99 %s, max %s\n",
		n, keys, rate, float64(n)/secs, pct(.5), pct(.9), pct(.99), lat[n-1])
	if pct(.99) > maxP99 {
		return fmt.Errorf("p99 %s is over the target of %s", pct(.99), maxP99)
	}
	return nil
}
