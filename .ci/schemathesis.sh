#!/usr/bin/env bash
# Validates /v1/openapi.json and runs schemathesis against a live server: a fresh data directory
# (init, domain, account, certificate), `serve` on a free loopback port with rate limits off, then
# `schemathesis run` with the subscriber's client certificate for a bounded number of examples per
# operation, failing on any 5xx or any response that does not match the document. Stops the server
# it started. Usage: bash .ci/schemathesis.sh (from anywhere; builds target/debug/sip-settings if
# needed). Environment: SCHEMATHESIS_EXAMPLES (default 20), SCHEMATHESIS_TIMEOUT (default 170 s).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n--- %s\n' "$*"; }

examples="${SCHEMATHESIS_EXAMPLES:-20}"
budget="${SCHEMATHESIS_TIMEOUT:-170}"
target_dir="${CARGO_TARGET_DIR:-target}"
bin="$target_dir/debug/sip-settings"

# --- tools ---------------------------------------------------------------------------------------
[[ -x "$bin" ]] || cargo build -q -p sip-settings
if ! command -v python3 >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-pip python3-venv
fi
# Pinned: a new schemathesis brings new checks, and CI must not turn red on its own. Raise the
# pins on purpose (and fix what the new version finds) in a commit of their own.
schemathesis_version="4.32.5"
validator_version="0.9.0"
venv="$target_dir/schemathesis-venv"
if [[ ! -x "$venv/bin/schemathesis" ]] \
    || ! "$venv/bin/schemathesis" --version | grep -qF "version $schemathesis_version" \
    || ! "$venv/bin/python" -m pip show openapi-spec-validator 2>/dev/null \
        | grep -qx "Version: $validator_version"; then
    log "installing schemathesis $schemathesis_version and openapi-spec-validator $validator_version"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "schemathesis==$schemathesis_version" "openapi-spec-validator==$validator_version"
fi
st="$(cd "$venv/bin" && pwd)/schemathesis"
"$st" --version

# --- a fresh installation --------------------------------------------------------------------------
work="$(mktemp -d)"
data="$work/data"
server_pid=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cli() { "$bin" --data-dir "$data" "$@"; }
cli init >/dev/null
cli domain add example.com >/dev/null
cli account add alice@example.com --password alice-sip-password >/dev/null
cli cert issue alice@example.com --out "$work/certs" >/dev/null
crt="$work/certs/alice@example.com.crt"
ca="$data/ca.crt"
printf '[rate_limits]\nenabled = false\n' >"$work/config.toml"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="https://localhost:$port"
log "starting sip-settings on 127.0.0.1:$port"
"$bin" --data-dir "$data" --config "$work/config.toml" serve --listen "127.0.0.1:$port" \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
    curl -sf --cacert "$ca" "$base/v1/openapi.json" -o "$work/openapi.json" && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
[[ -s "$work/openapi.json" ]] || { echo "the server did not answer" >&2; cat "$work/server.log" >&2; exit 1; }

# --- the document ----------------------------------------------------------------------------------
log "validating /v1/openapi.json"
"$venv/bin/python" - "$work/openapi.json" <<'EOF'
import json, sys
from openapi_spec_validator import validate
doc = json.load(open(sys.argv[1]))
assert doc["openapi"].startswith("3.1."), doc["openapi"]
assert doc["components"]["securitySchemes"]["mutualTLS"]["type"] == "mutualTLS"
validate(doc)
ops = sum(len([m for m in item if m in ("get", "put", "post", "patch", "delete")]) for item in doc["paths"].values())
print(f"OpenAPI {doc['openapi']}: valid, {len(doc['paths'])} paths, {ops} operations")
EOF

# --- schemathesis ----------------------------------------------------------------------------------
help="$("$st" run --help)"
tls_flag="--tls-verify"
grep -q -- "--request-tls-verify" <<<"$help" && tls_flag="--request-tls-verify"
started=$SECONDS
# run_st CERT FILTER...: one schemathesis run with CERT, within what is left of the time budget.
run_st() {
    local cert="$1"
    shift
    local left=$((budget - (SECONDS - started)))
    ((left > 10)) || { echo "schemathesis: time budget of ${budget}s spent" >&2; return 1; }
    local status=0
    # From the scratch directory: schemathesis keeps its state in ./.schemathesis.
    (cd "$work" && timeout "$left" "$st" run "$base/v1/openapi.json" \
        --url "$base" \
        --request-cert "$cert" \
        "$tls_flag" "$ca" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "$examples" \
        --workers 2 \
        --request-timeout 20 \
        --no-color \
        "$@") 2>&1 | tee -a "$work/schemathesis.out" || status=$?
    if [[ $status -ne 0 ]]; then
        echo "schemathesis failed (exit $status); server log:" >&2
        tail -n 50 "$work/server.log" >&2
        return "$status"
    fi
}
# Revoking a certificate may revoke the one the run authenticates with, so that operation runs
# last, on its own; the service operations run with a service certificate, the operator API's
# with an admin certificate. The operator's destructive operations (deleting an account,
# revoking certificates: alice's, or the admin certificate itself) run after everything else.
cli cert issue --service proxy1 --out "$work/certs" >/dev/null
service_crt="$(ls "$work"/certs/proxy1*.crt)"
cli cert issue --admin ops --out "$work/certs" >/dev/null
admin_crt="$work/certs/ops.crt"
admin_destructive=(--include-operation-id admin_revoke_certificate
    --include-operation-id admin_revoke_account_certificates
    --include-operation-id admin_delete_account)
log "schemathesis: /v1/me with a subscriber certificate, $examples examples per operation"
run_st "$crt" --exclude-operation-id revoke_certificate --exclude-path-regex '^/v1/(service|admin)/'
log "schemathesis: /v1/service/* with a service certificate"
run_st "$service_crt" --include-path-regex '^/v1/service/'
log "schemathesis: /v1/admin/* with an admin certificate"
run_st "$admin_crt" --include-path-regex '^/v1/admin/' \
    --exclude-operation-id admin_revoke_certificate \
    --exclude-operation-id admin_revoke_account_certificates \
    --exclude-operation-id admin_delete_account
log "schemathesis: revoking own certificates"
run_st "$crt" --include-operation-id revoke_certificate
log "schemathesis: the operator's deletions and revocations"
run_st "$admin_crt" "${admin_destructive[@]}"
log "schemathesis: no server error, every response matches the document ($((SECONDS - started)) s)"
passed="$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$work/schemathesis.out" | awk '{s += $3} END {print s + 0}')"
echo "schemathesis: $passed passed, 0 failed"
