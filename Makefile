# One-command set-up: every target that needs the tools creates .venv first.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOARD ?= esp32_devkitc
PORT ?= /dev/ttyUSB0
JOBS ?= 2
WASM := host_tools/wasm/node_modules/.package-lock.json

.PHONY: setup browser test test-fast sim bench fuzz image flash deploy config repl monitor schemas clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q -c constraints.txt -e '.[dev]'
	$(MAKE) browser
	touch $(STAMP)

# Headless chromium for the status page test (Debian packages). Never fatal: the
# browser test skips with a clear message when they could not be installed.
browser:
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || \
	  { SUDO=; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
	  echo "chromium not installed: the browser test will be skipped"

# The whole suite: CPython units, MicroPython runtime checks and end-to-end scenarios on both runtimes.
test: $(STAMP)
	$(VPY) -m pytest -n $(JOBS) -q

test-fast: $(STAMP)
	$(VPY) -m pytest -q -m 'not e2e'

sim: $(STAMP)
	$(VPY) -m host_tools devsim

bench: $(STAMP) $(WASM)
	$(VPY) -m host_tools bench

# The 32-bit runtime of the memory benchmark: MicroPython's WebAssembly port, the
# version pinned in host_tools/wasm/package-lock.json, run with node.
$(WASM): host_tools/wasm/package-lock.json
	cd host_tools/wasm && npm ci --no-audit --no-fund --silent

# Long seeded fuzz run of the OCPP and HTTP surfaces, SECONDS per runtime (the suite runs a short one).
# SEED=n replays a run; RUNTIME=micropython or cpython runs one runtime only.
SECONDS ?= 300
fuzz: $(STAMP)
	$(VPY) -m host_tools fuzz --seconds $(SECONDS) $(if $(SEED),--seed $(SEED)) $(if $(RUNTIME),--runtime $(RUNTIME))

schemas: $(STAMP)
	$(VPY) -m host_tools gen-schemas

# With MICROPYTHON_BIN=the .bin from micropython.org, also one flashable file: MicroPython and
# fs.img merged at the offsets of the partition table read from that .bin (build/$(BOARD)/flash.bin).
# With ROMFS=1, also the bundle as a ROMFS image for boards without PSRAM (build/$(BOARD)/romfs.img).
image: $(STAMP)
	$(VPY) -m host_tools image --board $(BOARD) $(if $(MICROPYTHON_BIN),--micropython $(MICROPYTHON_BIN)) $(if $(ROMFS),--romfs)

# Write build/$(BOARD)/flash.bin (make image MICROPYTHON_BIN=...) with esptool; or, with
# FIRMWARE=the MicroPython .bin, that and the filesystem image. Without either it explains.
flash: $(STAMP)
	$(VPY) -m host_tools flash --port $(PORT) --board $(BOARD) $(if $(FIRMWARE),--firmware $(FIRMWARE))

# Bring the board's files up to date (only what changed, stale files removed, /data kept) with mpremote;
# Wi-Fi and settings: python -m host_tools deploy --help. ROMFS=1: the bundle into the board's ROMFS
# partition (mpremote romfs deploy), main.py on the filesystem.
deploy: $(STAMP)
	$(VPY) -m host_tools deploy --port $(PORT) --board $(BOARD) $(if $(ROMFS),--romfs)

# A connected board's settings: make config PORT=/dev/ttyUSB0 ARGS='get ocpph' or ARGS='set ocpph=60'.
config: $(STAMP)
	$(VPY) -m host_tools config $(PORT) $(or $(ARGS),get)

repl: $(STAMP)
	$(VENV)/bin/mpremote connect $(PORT) repl

# The board's console log with host timestamps and compact OCPP frames; reconnects when the board resets
# or the cable is unplugged. Options (--ocpp, --grep RE, --log FILE): ARGS='--ocpp --log charger.log'.
monitor: $(STAMP)
	$(VPY) -m host_tools monitor $(PORT) $(ARGS)

clean:
	rm -rf build .pytest_cache
