package localmqtt

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestBrokerLogDemotes(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(brokerLog{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})}).With("part", "mqtt-broker")
	log.Info("mochi mqtt starting")
	log.Warn("", "error", "EOF")
	if buf.Len() != 0 {
		t.Fatalf("logged at info: %s", buf.String())
	}
	log.Warn("client store quota reached")
	log.Error("listener failed")
	if got := buf.String(); !strings.Contains(got, "quota") || !strings.Contains(got, "listener failed") || !strings.Contains(got, "part=mqtt-broker") {
		t.Fatalf("log %q lacks the warning or error", got)
	}
}
