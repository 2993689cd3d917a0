#!/usr/bin/env bash
# Validates /v1/openapi.json and runs schemathesis against a live server: a fresh data directory
# (init, domain, account, certificate), `serve` on a free loopback port with rate limits off, then
# `schemathesis run` with the subscriber's client certificate for a bounded number of examples per
# operation with all of schemathesis' checks: no 5xx, every response as documented, and the
# document exact both ways (every request valid by it is accepted, every invalid one refused).
# Stops the server it started. Usage: bash .ci/schemathesis.sh (from anywhere; builds
# target/debug/sip-settings if needed). Environment: SCHEMATHESIS_EXAMPLES (default 20),
# SCHEMATHESIS_TIMEOUT (default 170 s), SCHEMATHESIS_CHECKS (default all), SCHEMATHESIS_PARTS
# (default "me service revoke"), SCHEMATHESIS_ARGS (more arguments of `schemathesis run`).
#
# Narrowings, in schemathesis.toml below: positive_data_acceptance also takes 412 (a
# well-formed If-Match that is not the current ETag is stale, and SPEC §6 requires 412 for it;
# no document can make a random well-formed tag current), and so does negative_data_rejection
# (a stale tag refuses the request before its body is read); opening a prepaid session also
# takes 402 and 422 (the account's balance or rates refuse a well-formed request). Custom string formats (CSRs, times
# within a week, calls cursors) get their strategies from .ci/schemathesis_hooks.py.
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
# (Outputs captured first: `grep -q` closing the pipe early fails the pipeline under pipefail,
# which reinstalled the venv on every run.)
installed="$("$venv/bin/schemathesis" --version 2>/dev/null || true)"
installed_validator="$("$venv/bin/python" -m pip show openapi-spec-validator 2>/dev/null || true)"
if [[ ! -x "$venv/bin/schemathesis" ]] \
    || ! grep -qF "version $schemathesis_version" <<<"$installed" \
    || ! grep -qx "Version: $validator_version" <<<"$installed_validator"; then
    log "installing schemathesis $schemathesis_version and openapi-spec-validator $validator_version"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        "schemathesis==$schemathesis_version" "openapi-spec-validator==$validator_version"
fi
st="$(cd "$venv/bin" && pwd)/schemathesis"
"$st" --version

command -v openssl >/dev/null 2>&1 || {
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq openssl
}

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
# CSRs for the `pkcs10-pem` format (keys made now, in the scratch directory, deleted at exit).
mkdir -p "$work/csr"
for i in 1 2 3; do
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=client$i" \
        -keyout "$work/csr/$i.key" -out "$work/csr/$i.csr" 2>/dev/null
done
export SIP_SETTINGS_CSR_DIR="$work/csr"
export SCHEMATHESIS_HOOKS="$PWD/.ci/schemathesis_hooks.py"
cat >"$work/schemathesis.toml" <<'TOML'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]

# A stale If-Match refuses the request too (412 before the body is read; nothing changes), and
# so does a body over the 64 KiB limit (413, before it is parsed).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "406", "412", "413", "422", "428", "5xx"]

# Opening a prepaid session for a valid request can be refused for the account's state:
# 402 insufficient_balance, 422 no_rate (409 not_prepaid is allowed above). SPEC §5: call
# control opens a session "or refuses".
[[operations]]
include-operation-id = "open_session"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "402", "403", "404", "409", "412", "422", "429", "5xx"]

# Requests whose validity depends on data the document cannot see, refused with 400 naming the
# field: a forwarding target is checked against the account itself (its own address, its
# aliases, its mobile number, whether voicemail is on); a call record needs a party served
# here; an alias must be in its account's domain (two fields); a CSV import's rows are parsed
# and checked row by row. Each is tested by the Rust API tests instead.
[[operations]]
include-path-regex = "^/v1/me/diversions"
include-method = ["PUT", "PATCH"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

# Forwarding rules and sets likewise: every target as above, the sets a rule names must exist
# and a called set list the account's own addresses, a rule must not loop through local
# accounts, response codes are final failures (400–699), dates and caller patterns parse.
[[operations]]
include-path-regex = "^/v1/me/forwarding-(rules|sets)"
include-method = ["PUT", "POST"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

[[operations]]
include-path-regex = "^/v1/service/calls"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

[[operations]]
include-path-regex = "^/v1/admin/(aliases|rates|calls)$"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

# The coverage phase of schemathesis 4.32.5 makes its "valid" cases without a custom format's
# generator (it sends "" for `until`) and without `not` (a disabled mailbox with new
# settings): those two kinds of bodies are generated by the other phases only.
[[operations]]
include-path-regex = "^/v1/me/(dnd|voicemail)$|^/v1/admin/accounts/[^/]+/voicemail$"
include-method = ["PUT", "PATCH"]
phases.coverage.enabled = false

# The same for a prepaid card batch's `expires` (the custom format's generator makes future
# times; the coverage phase's "" is refused, naming `expires`).
[[operations]]
include-path-regex = "^/v1/admin/domains/[^/]+/vouchers$"
include-method = "POST"
phases.coverage.enabled = false
TOML

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
        --checks "${SCHEMATHESIS_CHECKS:-all}" \
        --max-examples "$examples" \
        --workers 2 \
        --request-timeout 20 \
        --no-color \
        ${SCHEMATHESIS_ARGS:-} \
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
# Every part runs even when one before it failed, so that one run shows all failures.
# SCHEMATHESIS_PARTS (default "me service admin revoke destructive") picks parts while iterating.
parts=" ${SCHEMATHESIS_PARTS:-me service admin revoke destructive} "
failed=""
if [[ "$parts" == *" me "* ]]; then
    log "schemathesis: /v1/me with a subscriber certificate, $examples examples per operation"
    run_st "$crt" --exclude-operation-id revoke_certificate \
        --exclude-path-regex '^/v1/(service|admin)/' || failed="$failed me"
fi
if [[ "$parts" == *" service "* ]]; then
    log "schemathesis: /v1/service/* with a service certificate"
    run_st "$service_crt" --include-path-regex '^/v1/service/' || failed="$failed service"
fi
if [[ "$parts" == *" admin "* ]]; then
    log "schemathesis: /v1/admin/* with an admin certificate"
    run_st "$admin_crt" --include-path-regex '^/v1/admin/' \
        --exclude-operation-id admin_revoke_certificate \
        --exclude-operation-id admin_revoke_account_certificates \
        --exclude-operation-id admin_delete_account || failed="$failed admin"
fi
if [[ "$parts" == *" revoke "* ]]; then
    log "schemathesis: revoking own certificates"
    run_st "$crt" --include-operation-id revoke_certificate || failed="$failed revoke"
fi
if [[ "$parts" == *" destructive "* ]]; then
    log "schemathesis: the operator's deletions and revocations"
    run_st "$admin_crt" "${admin_destructive[@]}" || failed="$failed destructive"
fi
if [[ -n "$failed" ]]; then
    echo "schemathesis: failed:$failed ($((SECONDS - started)) s)" >&2
    exit 1
fi
log "schemathesis: no server error, every response matches the document ($((SECONDS - started)) s)"
passed="$(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$work/schemathesis.out" | awk '{s += $3} END {print s + 0}')"
echo "schemathesis: $passed passed, 0 failed"
