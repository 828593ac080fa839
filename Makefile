VENV := .venv
STAMP := $(VENV)/.semclust-installed

.PHONY: install demo test lint clean

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	bash scripts/install.sh
	touch $(STAMP)

demo: install
	$(VENV)/bin/semclust demo

test: install
	$(VENV)/bin/ruff check semclust tests benchmarks
	$(VENV)/bin/mypy semclust
	$(VENV)/bin/python -m pytest -q

lint: install
	$(VENV)/bin/ruff check semclust tests benchmarks
	$(VENV)/bin/mypy semclust

clean:
	rm -rf $(VENV) .pytest_cache
