# The two commands a newcomer needs (README.md): `make demo` and `make test`.
DATA_DIR ?= monitord-demo
DURATION ?=

.PHONY: demo test bench install

install:
	scripts/bootstrap.sh

demo: install
	-scripts/snmpsim.sh  # the simulated switches and UPS; the demo runs without them too
	.venv/bin/monitord demo --data-dir $(DATA_DIR) $(if $(DURATION),--duration $(DURATION))

test:
	scripts/test-setup.sh
	MONITORD_REQUIRE_PG=1 .venv/bin/python -m pytest -q

bench: install
	.venv/bin/python bench/pipeline.py
