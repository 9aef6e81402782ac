# One-command set-up: every target that needs the tools creates .venv first.
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOARD ?= esp32_devkitc
PORT ?= /dev/ttyUSB0
JOBS ?= 2

.PHONY: setup browser test test-fast sim bench image flash deploy repl monitor schemas clean

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

bench: $(STAMP)
	$(VPY) -m host_tools bench

schemas: $(STAMP)
	$(VPY) -m host_tools gen-schemas

image: $(STAMP)
	$(VPY) -m host_tools image --board $(BOARD)

# MicroPython (FIRMWARE=the .bin from micropython.org) and build/$(BOARD)/fs.img, with esptool.
# Without FIRMWARE it explains where to get one.
flash: $(STAMP)
	$(VPY) -m host_tools flash --port $(PORT) --board $(BOARD) $(if $(FIRMWARE),--firmware $(FIRMWARE))

# Copy the bundle (rebuilt when stale) with mpremote; Wi-Fi and settings: python -m host_tools deploy --help.
deploy: $(STAMP)
	$(VPY) -m host_tools deploy --port $(PORT) --board $(BOARD)

repl: $(STAMP)
	$(VENV)/bin/mpremote connect $(PORT) repl

# A plain serial log: mpremote's terminal shows the board's console.
monitor: $(STAMP)
	$(VENV)/bin/mpremote connect $(PORT) resume repl

clean:
	rm -rf build .pytest_cache
