# order-intake: `make run` serves with a database, `make test` runs the whole suite; both bring PostgreSQL up first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# A .env file, when present, sets the same variables the service reads.
-include .env
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/order_intake
export DATABASE_URL
# The coordinator of the project-local Citus cluster (`make citus`); its workers listen on the next two ports.
CITUS_DATABASE_URL ?= postgres://postgres@127.0.0.1:9700/order_intake
export CITUS_DATABASE_URL
# Builds use the committed query data in .sqlx/, so they never depend on the state of a database.
export SQLX_OFFLINE ?= true

SQLX_CLI_VERSION := 0.9.0
BIN := target/release/order-intake
DEV_ACCOUNT := .dev-account.json

.PHONY: help db db-stop migrate run install test chaos citus citus-stop test-citus lint layers prepare openapi \
	openapi-lint client-check contract docs-check walkthrough alerts bench sqlx-cli

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

db: ## Bring up PostgreSQL and the database named by DATABASE_URL
	@.ci/postgres

db-stop: ## Stop the project-local PostgreSQL, if one was started
	@.ci/postgres stop

migrate: db sqlx-cli ## Apply migrations with sqlx-cli
	sqlx migrate run

run: db ## Serve on LISTEN_ADDR with migrations applied and a development account
	cargo build --release --locked
	$(BIN) migrate
	@if [[ ! -s $(DEV_ACCOUNT) ]] || ! psql "$(DATABASE_URL)" -tAc \
	    "SELECT 1 FROM accounts WHERE id = '$$(sed -E 's/.*"id":"([^"]+)".*/\1/' $(DEV_ACCOUNT))'" | grep -q 1; then \
	  $(BIN) accounts create --name "Development" > $(DEV_ACCOUNT); \
	fi
	@echo "Development account (also in $(DEV_ACCOUNT)): $$(cat $(DEV_ACCOUNT))"
	$(BIN) serve

install: ## Put the order-intake command on the PATH (cargo install into ~/.cargo/bin)
	cargo install --locked --path .

test: db sqlx-cli ## Run the whole test suite against a real PostgreSQL
	cargo test --locked --all-targets

chaos: db ## Only the fault tests (make test runs them too): storms, three instances, kill -9, PostgreSQL restarts
	cargo test --locked --test chaos

citus: ## Bring up a project-local Citus coordinator and two workers (.citus/), print their DATABASE_URL
	@.ci/citus

citus-stop: ## Stop the project-local Citus cluster
	@.ci/citus stop

# The API suite and the three-instance chaos test on Citus. Each test's database is distributed (see .ci/citus);
# ORDER_INTAKE_TEST_CITUS=1 makes the distribution tests insist on it, and --include-ignored runs the ones that need
# Citus.
test-citus: ## The API suite and the three-instance chaos test against the Citus cluster of `make citus`
	@.ci/citus >/dev/null
	DATABASE_URL=$(CITUS_DATABASE_URL) ORDER_INTAKE_TEST_CITUS=1 \
	  cargo test --locked --test api -- --include-ignored
	DATABASE_URL=$(CITUS_DATABASE_URL) ORDER_INTAKE_TEST_CITUS=1 cargo test --locked --test chaos instances::

lint: layers ## Formatting, clippy, warning-free docs and the direction of use, as CI checks them
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps

layers: ## The one direction of use: domain <- db <- idempotency <- api (README, Layout)
	@.ci/layers

prepare: db sqlx-cli ## Regenerate .sqlx/ after changing a query or a migration
	sqlx migrate run
	SQLX_OFFLINE=false cargo sqlx prepare -- --all-targets

openapi: ## Regenerate openapi/openapi.json from the code (no database needed)
	@mkdir -p openapi
	cargo run --quiet --locked -- openapi > openapi/openapi.json.tmp
	mv openapi/openapi.json.tmp openapi/openapi.json

openapi-lint: ## Check openapi/openapi.json is current, valid (openapi-spec-validator) and clean under Spectral's rules
	.ci/openapi-lint

client-check: db ## Generate a Python client from openapi/openapi.json and run a scenario through it on a fresh database
	.ci/client-check

contract: db ## Schemathesis over openapi/openapi.json against a fresh database, every check on
	.ci/contract

docs-check: ## Load /docs in headless Chromium and check that every operation renders
	.ci/docs-check

walkthrough: db ## Run examples/walkthrough.sh (the README's walk-through) against a fresh server and database
	.ci/walkthrough

alerts: ## Check deploy/prometheus/alerts.yml and run its unit tests with promtool (installed when missing)
	.ci/alerts

bench: ## Benchmarks: keyed, unkeyed, replay and GET against the pgbench ceilings, as ratios; saved in bench/results/
	bench/run

sqlx-cli:
	@command -v sqlx >/dev/null && sqlx --version | grep -q " $(SQLX_CLI_VERSION)" || \
	  cargo install sqlx-cli --version $(SQLX_CLI_VERSION) --locked --no-default-features --features postgres,rustls
