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

.PHONY: build run test test-alerts test-arm test-package e2e bench lint cross dist fuzz clean

# bin/edged for this machine.
build:
	$(BUILD) -o bin/edged ./cmd/edged

# A node with the defaults: data in ./data, HTTP API on 127.0.0.1:8080.
run: build
	./bin/edged run

# How many random cases each CRDT property test tries in `make test`
# (rapid's own default is 100), and how many seeds each randomized
# replication simulation runs (go test alone: 60 and 120).
RAPID_CHECKS ?= 1000
SIM_SEEDS ?= 1000

# go vet, then every test (including the crash test's 50 kill cycles, the
# disk-full test on a tmpfs, which needs root and fails under CI=true without
# it, and the dashboard in headless Chromium, whose screenshots go to
# node/_artifacts/), then the CRDT property tests and the engine's bound on
# shared log entries at RAPID_CHECKS cases, and
# the randomized replication simulations at SIM_SEEDS seeds, then e2e,
# then the ARM suites under qemu, then the .deb installed and purged, then
# the footprint budget (binary sizes; idle RSS and CPU; RSS under ingest
# with peers; cold start with 1,000,000 keys).
test:
	$(GO) vet ./...
	$(GO) test $(RACE) -artifacts ./...
	$(GO) test ./crdt -run 'TestModel|TestJoinLaws|TestDeltaDelivery|TestRoundTrip' -rapid.checks=$(RAPID_CHECKS)
	$(GO) test ./engine -run 'TestJoinBoundHolds' -rapid.checks=$(RAPID_CHECKS)
	$(GO) test ./replication -run 'TestConvergesUnderFaults|TestCountersHoldEveryIncrement' -sim.seeds=$(SIM_SEEDS)
	$(MAKE) test-alerts
	$(MAKE) e2e
	$(MAKE) test-arm test-package
	./scripts/footprint.sh all

# The built binary driven through HTTP and MQTT by curl and the mosquitto
# clients, then five of them in network namespaces on one LAN finding each
# other over mDNS (scripts/testbed.sh: needs root and iproute2), then four
# sites behind NAT routers reaching each other through a relay and by hole
# punching, retried (scripts/natbed.sh: also nftables). Each is skipped with a
# message where what it needs is missing, failed under CI.
e2e: build
	./scripts/e2e-local.sh bin/edged
	./scripts/testbed.sh bin/edged 5
	./scripts/natbed.sh bin/edged

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Fails on unformatted files, go vet findings, staticcheck findings, or a
# third_party/badger that is not Badger with our patches (third_party/README.md).
lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	./scripts/vendor.sh --check

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

# Packages in bin/dist: a .deb for amd64, arm64 and armhf (the ARMv6
# build, which runs on every 32-bit Raspberry Pi and ARMv7 board) made by
# nfpm (a Go tool of the tools/ module, so it stays out of the binary's
# module), and a tarball of each binary. The packaged configuration is
# configs/edged.yaml with its data in /var/lib/edged.
DEB_VERSION := $(shell echo '$(VERSION)' | sed -e 's/^v//' -e 's/^\([0-9a-f]\{7,\}\)/0.0.0+g\1/' -e 's/-dirty$$/.dirty/')
NFPM := $(GO) tool -modfile=tools/go.mod nfpm
dist: cross
	rm -rf bin/dist && mkdir -p bin/dist
	sed 's|^  data_dir: ./data$$|  data_dir: /var/lib/edged|' configs/edged.yaml > bin/dist/edged.yaml
	grep -q '^  data_dir: /var/lib/edged$$' bin/dist/edged.yaml
	set -e; for pair in amd64:amd64 arm64:arm64 armv6:armhf; do \
		build=$${pair%%:*}; arch=$${pair##*:}; \
		sed -e "s|@ARCH@|$$arch|" -e 's|@VERSION@|$(DEB_VERSION)|' -e "s|@BINARY@|bin/edged-linux-$$build|" \
			-e 's|@CONFIG@|bin/dist/edged.yaml|' packaging/nfpm.yaml > bin/dist/nfpm-$$arch.yaml; \
		$(NFPM) package --config bin/dist/nfpm-$$arch.yaml --packager deb --target bin/dist/; \
		rm bin/dist/nfpm-$$arch.yaml; \
	done
	set -e; for build in amd64 arm64 armv7 armv6; do \
		d=bin/dist/edged-$(DEB_VERSION)-linux-$$build; mkdir -p $$d; \
		cp bin/edged-linux-$$build $$d/edged; cp bin/dist/edged.yaml packaging/edged.service packaging/prometheus/edged-alerts.yml scripts/install-pi.sh README.md $$d/; \
		tar -C bin/dist -czf $$d.tar.gz $$(basename $$d); rm -rf $$d; \
	done
	ls -l bin/dist

# Checks the Prometheus alerting rules and runs their unit tests with
# promtool (Debian package prometheus): skipped with a message without it,
# failed under CI=true.
test-alerts:
	@if command -v promtool >/dev/null; then \
		promtool check rules packaging/prometheus/edged-alerts.yml && \
		cd packaging/prometheus && promtool test rules edged-alerts.test.yml; \
	elif [ "$$CI" = true ]; then \
		echo "test-alerts: promtool is missing (apt-get install prometheus)" >&2; exit 1; \
	else \
		echo "test-alerts: SKIP: promtool is missing (apt-get install prometheus)"; \
	fi

# Installs this machine's .deb, checks it and the unit (systemd-analyze
# verify), runs the installed node as its user, and purges it: needs root,
# skipped with a message otherwise (failed under CI=true).
test-package: dist
	./scripts/package-test.sh

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
