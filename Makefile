# One command for the demo, one for the tests. Both install what they need themselves.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: demo demo-guests test test-fast bench install clean-demo wheel

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## the browser tests drive Debian's headless Chromium (never a browser download); apt only when missing
/usr/bin/chromium:
	@echo "installing Debian's chromium and chromium-driver for the browser tests"
	DEBIAN_FRONTEND=noninteractive apt-get -qq update >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends chromium chromium-driver >/dev/null

install: $(STAMP) /usr/bin/chromium

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

## demo-guests: servers that really run (devcloud guests mode, root): apply, harden over verified SSH, audit
demo-guests: $(STAMP)
	$(BIN)/gcloudctl devcloud up --guests
	mkdir -p .demo && test -f .demo/gcadmin || ssh-keygen -q -t ed25519 -N "" -C gcadmin@demo -f .demo/gcadmin
	$(BIN)/python examples/guests_request.py .demo/gcadmin.pub .demo/byt-his-guests.yaml
	GCLOUDCTL_SSH_PROXY_COMMAND="$$($(BIN)/gcloudctl devcloud proxy-command)" \
	  $(BIN)/gcloudctl apply .demo/byt-his-guests.yaml --yes --key .demo/gcadmin
	GCLOUDCTL_SSH_PROXY_COMMAND="$$($(BIN)/gcloudctl devcloud proxy-command)" \
	  $(BIN)/gcloudctl audit-hosts byt-his-guests --no-lynis --key .demo/gcadmin --out .demo/audit
	$(BIN)/gcloudctl devcloud guests
	@echo
	@echo "Tear down with: $(BIN)/gcloudctl destroy byt-his-guests --yes && $(BIN)/gcloudctl devcloud up --no-guests"

clean-demo: $(STAMP)
	$(BIN)/gcloudctl destroy byt-his-staging --yes

## test: everything, including the real local cloud and the SSH test hosts (root).
## The suite owns the devcloud while it runs, so the test that restarts Neutron runs too.
## Two pytest runs side by side: every devcloud test in order (they share the cloud) and the rest
## (units, namespace test hosts, PostgreSQL, the browser), each with its own TMPDIR; the second's
## output is printed when both have finished. Fails when either fails.
test: $(STAMP) /usr/bin/chromium
	$(BIN)/lint-imports
	@mkdir -p .test-logs /tmp/gcloudctl-pytest-local /tmp/gcloudctl-pytest-cloud
	@echo "devcloud tests below; the others run beside them (log: .test-logs/local.log, printed at the end)"
	@TMPDIR=/tmp/gcloudctl-pytest-local $(BIN)/pytest -q --durations=15 -p no:cacheprovider -m "not devcloud" \
	    > .test-logs/local.log 2>&1 & others=$$!; \
	GCLOUDCTL_DEVCLOUD_DISRUPTIVE=1 TMPDIR=/tmp/gcloudctl-pytest-cloud $(BIN)/pytest -q --durations=15 -m devcloud; \
	cloud=$$?; wait $$others; rest=$$?; \
	echo; echo "=== the tests beside devcloud (-m 'not devcloud') ==="; cat .test-logs/local.log; \
	echo "make test: devcloud tests exit $$cloud, the others exit $$rest"; \
	test $$cloud -eq 0 && test $$rest -eq 0

## test-fast: no devcloud, no test hosts
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not devcloud and not testhost and not postgres"

## wheel: the installable package in dist/ (templates, playbooks, catalogs inside); tests/packaging installs it
## in a fresh venv and runs it outside the checkout
wheel: $(STAMP)
	$(BIN)/pip wheel --no-deps --no-build-isolation -w dist .

bench: $(STAMP)
	$(BIN)/python bench/tenant_bench.py --sizes 3,20
