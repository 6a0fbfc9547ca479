# One command for the demo, one for the tests. Both install what they need themselves.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo test test-fast bench install clean-demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: bring up the local OpenStack, apply the example tenant request, show it
demo: $(STAMP)
	$(BIN)/gcloudctl devcloud up
	$(BIN)/gcloudctl validate examples/byt-his-staging.yaml
	$(BIN)/gcloudctl plan examples/byt-his-staging.yaml
	$(BIN)/gcloudctl apply examples/byt-his-staging.yaml --yes
	$(BIN)/gcloudctl describe byt-his-staging
	$(BIN)/gcloudctl plan examples/byt-his-staging.yaml --detailed-exitcode
	@echo
	@echo "Seen by an independent client (python-openstackclient):"
	$(BIN)/openstack --os-cloud devcloud server list --all-projects --project byt-his-staging
	@echo
	@echo "Tear it down with: $(BIN)/gcloudctl destroy byt-his-staging --yes"

clean-demo: $(STAMP)
	$(BIN)/gcloudctl destroy byt-his-staging --yes

## test: everything, including the real local cloud and the SSH test hosts (root).
## The suite owns the devcloud while it runs, so the test that restarts Neutron runs too.
test: $(STAMP)
	$(BIN)/lint-imports
	GCLOUDCTL_DEVCLOUD_DISRUPTIVE=1 $(BIN)/pytest -q

## test-fast: no devcloud, no test hosts
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not devcloud and not testhost and not postgres"

bench: $(STAMP)
	$(BIN)/python bench/tenant_bench.py --sizes 3,20
