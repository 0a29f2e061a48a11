# The two set-up commands (see README.md). Each installs what it needs into .venv first.

.PHONY: quickstart test bench docs

# Tune SmolLM2-135M-Instruct on the quickstart task, end to end, on this machine.
quickstart:
	scripts/bootstrap
	.venv/bin/tunespec apply specs/quickstart --yes

# The whole test suite (CI runs exactly this through .ci/run).
test:
	scripts/bootstrap
	.venv/bin/python -m pytest -q

# Benchmarks print their figures as ratios against a baseline measured in the same run.
bench:
	scripts/bootstrap
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done

# Regenerate docs/spec-reference.md from the schema and docs/api.md from the public API's
# docstrings (a test fails when either is stale).
docs:
	scripts/bootstrap
	.venv/bin/python -m tunespec.docgen
	.venv/bin/python -m tunespec.apidoc
