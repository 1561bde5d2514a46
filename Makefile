# neuron-dynamics: every target sets up .venv (and qemu-system-arm) on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
NDYN   := $(VENV)/bin/ndyn
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench venv qemu clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $@

venv: $(VENV)/.installed

# The virtual micro:bit needs QEMU's ARM system emulator; the C-export tests
# compile the generated header with gcc (Debian/Ubuntu packages).
qemu:
	@missing=""; \
	command -v qemu-system-arm >/dev/null 2>&1 || missing="$$missing qemu-system-arm"; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v size >/dev/null 2>&1 || missing="$$missing binutils"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; fi

demo: venv qemu
	$(NDYN) demo

test: venv qemu
	$(PY) -m pytest tests

bench: venv qemu
	$(NDYN) bench

clean:
	rm -rf $(VENV) build *.egg-info host/*.egg-info .pytest_cache
