#!/usr/bin/env bash
# Lint gates for template.yaml: cfn-lint, `sam validate --lint`, checkov.
#
# Expects cfn-lint, sam and checkov on PATH (`make lint` activates the venv that has them;
# checkov may live in its own venv because its pins conflict with cfn-lint's: set CHECKOV to
# its path). Runs every gate even after a failure so one run shows all problems, then exits
# non-zero if any gate failed. Needs no AWS credentials and no network.
set -uo pipefail

TEMPLATE="${1:-template.yaml}"
REGION="${AWS_REGION:-us-east-1}" # sam validate needs a region even though it calls no AWS API
CFN_LINT="${CFN_LINT:-cfn-lint}"
SAM="${SAM:-sam}"
CHECKOV="${CHECKOV:-checkov}"

export SAM_CLI_TELEMETRY=0

if [[ ! -f "$TEMPLATE" ]]; then
    echo "lint-template: $TEMPLATE not found" >&2
    exit 2
fi

failed=()

run() {
    local name="$1"
    shift
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "== $name: $1 not found on PATH" >&2
        failed+=("$name (not installed)")
        return
    fi
    echo "== $name"
    if ! "$@"; then
        failed+=("$name")
    fi
}

run cfn-lint "$CFN_LINT" "$TEMPLATE"
run "sam validate" "$SAM" validate --lint --region "$REGION" --template-file "$TEMPLATE"
# every failing check must be fixed or skipped in the template with a written reason
# (Metadata: checkov: skip: [{id, comment}]); --skip-download keeps the run offline
run checkov "$CHECKOV" --file "$TEMPLATE" --framework cloudformation --skip-download --compact --quiet

if ((${#failed[@]})); then
    echo "lint-template: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "lint-template: all gates passed"
