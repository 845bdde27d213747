# trailwatch — build, test, lint, run locally, deploy.
# Every target is .PHONY; variables can be overridden (make test CARGO=...).

CARGO      ?= cargo
PYTHON     ?= python3
VENV       ?= .venv
LINT_VENV  ?= .venv-lint
CHECKOV_VENV ?= .venv-checkov
MOTO_PIN   ?= moto[server]==5.1.22
CFNLINT_PIN ?= cfn-lint==1.58.0
SAM_PIN    ?= aws-sam-cli==1.170.0
CHECKOV_PIN ?= checkov==3.3.30
CARGO_LAMBDA_PIN ?= cargo-lambda==1.9.2
FUZZ_SECONDS ?= 60

.PHONY: all build test unit audit lint lint-rust lint-template fmt demo bench fuzz deploy \
        invoke-log-processor invoke-event-handler invoke-config-auditor venv lint-venv checkov-venv clean-venv

all: test

## Python tools, each in its own venv (never system-wide): moto's server extra pins a
## cfn-lint that conflicts with the one we lint with, and checkov pins its own world
venv: $(VENV)/.installed
$(VENV)/.installed:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check '$(MOTO_PIN)'
	touch $@

lint-venv: $(LINT_VENV)/.installed
$(LINT_VENV)/.installed:
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --disable-pip-version-check '$(CFNLINT_PIN)' '$(SAM_PIN)'
	touch $@

checkov-venv: $(CHECKOV_VENV)/.installed
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check '$(CHECKOV_PIN)'
	touch $@

## The whole gate: format, clippy, unit + rule + corpus + moto integration tests, template lints
test: venv lint-rust audit unit lint-template

lint-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

unit: venv
	TRAILWATCH_REQUIRE_MOTO=1 MOTO_SERVER=$(CURDIR)/$(VENV)/bin/moto_server \
	  $(CARGO) test --workspace --all-features
	@# the binary the tests just built: `cargo run` would resolve features without the
	@# dev-dependencies and rebuild tokio and the SDK for nothing
	$(CURDIR)/target/debug/trailwatch rules test

## Supply chain: licences, bans (one TLS stack), sources; advisories where reachable
audit:
	bash scripts/audit.sh

lint-template: lint-venv checkov-venv
	PATH="$(CURDIR)/$(LINT_VENV)/bin:$(CURDIR)/$(CHECKOV_VENV)/bin:$$PATH" bash scripts/lint-template.sh

lint: lint-rust audit lint-template

fmt:
	$(CARGO) fmt --all

## The main job on the bundled sample logs: prints the findings table
demo:
	$(CARGO) run --quiet -p trailwatch-cli -- scan --format table events/

## Lambda artefacts for arm64 (cargo-lambda from pip: pip install cargo-lambda)
build:
	cargo lambda build --release --arm64

deploy:
	sam build && sam deploy --guided

## Local invokes against moto with cargo lambda watch/invoke (EVENT=events/... to choose)
invoke-log-processor: venv
	bash scripts/invoke.sh log-processor $(EVENT)

invoke-event-handler: venv
	bash scripts/invoke.sh event-handler $(EVENT)

invoke-config-auditor: venv
	bash scripts/invoke.sh config-auditor $(EVENT)

bench:
	bash scripts/bench.sh

fuzz:
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

clean-venv:
	rm -rf $(VENV) $(LINT_VENV) $(CHECKOV_VENV)
