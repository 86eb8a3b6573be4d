# Build, test and release tasks for edged; see README.md.

GO ?= go

# Stamped into the binary; outside a git checkout, or where git refuses to
# run, the build is "dev" at commit "unknown".
VERSION ?= $(or $(shell git describe --tags --always --dirty 2>/dev/null),dev)
COMMIT ?= $(or $(shell git rev-parse --short HEAD 2>/dev/null),unknown)

BUILDINFO := github.com/edged-dev/edged/buildinfo
LDFLAGS := -s -w -X $(BUILDINFO).Version=$(VERSION) -X $(BUILDINFO).Commit=$(COMMIT)
# Static, reproducible binaries: no cgo, no local paths.
BUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)'
CROSS := CGO_ENABLED=0 GOOS=linux $(GO) build -trimpath -ldflags '$(LDFLAGS)'

# The race detector needs cgo and a C compiler; without them (a bare
# machine) the tests run without it.
RACE ?= $(if $(filter 1,$(shell $(GO) env CGO_ENABLED)),-race)

# Pinned so lint results do not change under us; 2026.2.2 supports Go 1.26.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 10s

.PHONY: build run test test-arm e2e bench lint cross fuzz clean

# bin/edged for this machine.
build:
	$(BUILD) -o bin/edged ./cmd/edged

# A node with the defaults: data in ./data, HTTP API on 127.0.0.1:8080.
run: build
	./bin/edged run

# How many random cases each CRDT property test tries in `make test`
# (rapid's own default is 100).
RAPID_CHECKS ?= 1000

# go vet, then every test (including the crash test's 50 kill cycles and
# the disk-full test on a tmpfs, which needs root and fails under CI=true
# without it), then the CRDT property tests at RAPID_CHECKS cases, then e2e,
# then the ARM suites under qemu.
test:
	$(GO) vet ./...
	$(GO) test $(RACE) ./...
	$(GO) test ./crdt -run 'TestModel|TestJoinLaws|TestDeltaDelivery|TestRoundTrip' -rapid.checks=$(RAPID_CHECKS)
	$(MAKE) e2e
	$(MAKE) test-arm

# The built binary driven through HTTP and MQTT by curl and the mosquitto
# clients, then five of them in network namespaces on one LAN finding each
# other over mDNS (scripts/testbed.sh: needs root and iproute2). Each is
# skipped with a message where what it needs is missing, failed under CI.
e2e: build
	./scripts/e2e-local.sh bin/edged
	./scripts/testbed.sh bin/edged 5

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Fails on unformatted files, go vet findings or staticcheck findings.
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Static binaries for the fleet's Linux machines: x86, 64-bit ARM, and
# 32-bit ARM for ARMv7 boards and the ARMv6 Raspberry Pi Zero and 1.
cross:
	GOARCH=amd64 $(CROSS) -o bin/edged-linux-amd64 ./cmd/edged
	GOARCH=arm64 $(CROSS) -o bin/edged-linux-arm64 ./cmd/edged
	GOARCH=arm GOARM=7 $(CROSS) -o bin/edged-linux-armv7 ./cmd/edged
	GOARCH=arm GOARM=6 $(CROSS) -o bin/edged-linux-armv6 ./cmd/edged

# The suites that must hold on the fleet's ARM boards, cross-built and run
# under qemu-user (Debian's qemu-user-static): the CRDT kernel, the length
# checks of the decoders, the store and the replication engine, on arm64
# and on 32-bit armv7 (where int is 32 bits and Badger lives in a 4 GiB
# address space); then each cross-built binary smoke-run. Without
# qemu-user-static it skips with a message, failing under CI=true.
ARM_SUITES := ./crdt ./cborcheck ./store ./replication ./cloud
test-arm: cross
	@if ! command -v qemu-aarch64-static >/dev/null || ! command -v qemu-arm-static >/dev/null; then \
		if [ "$$CI" = true ]; then echo "test-arm: qemu-user-static is missing (apt-get install qemu-user-static)" >&2; exit 1; fi; \
		echo "test-arm: SKIP: qemu-user-static is missing (apt-get install qemu-user-static)"; exit 0; \
	fi; \
	set -e; \
	CGO_ENABLED=0 GOARCH=arm64 $(GO) test -short -exec qemu-aarch64-static $(ARM_SUITES); \
	CGO_ENABLED=0 GOARCH=arm GOARM=7 $(GO) test -short -exec qemu-arm-static $(ARM_SUITES); \
	./scripts/smoke-arm.sh

# Runs every Fuzz* function of every package, one at a time, as go test
# -fuzz takes one target in one package.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		list="$$($(GO) test -list '^Fuzz' "$$pkg")"; \
		for target in $$(echo "$$list" | grep '^Fuzz'); do \
			echo "fuzz $$pkg $$target for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) "$$pkg"; \
		done; \
	done

clean:
	rm -rf bin/
