#!/usr/bin/env bash
# Builds the Debian package and checks it as an administrator would use it: the file name and
# contents, `dpkg -i`, the maintainer scripts' work (user, modes, the data directory initialised),
# `systemd-analyze verify` and `security` on the installed unit, the installed binary's CLI and
# `serve` run as the package's user with the installed configuration (under the kernel's
# memory-deny-write-execute and no-new-privileges, as the unit runs it, and under strace to hold
# its system calls against the unit's SystemCallFilter=), requests over mutual TLS, SIGTERM, a
# backup, an upgrade in place, removal and purge. Leaves the machine as it found it (an
# earlier install is purged first, this one at the end, also on failure).
# Usage: bash .ci/deb.sh (from anywhere, as root). Environment: DEB_PROFILE, the Cargo profile
# to build with (default: release, what `cargo deb` ships). CI passes dev: the test step has just
# built the debug binary, and a release build from scratch costs about 11.5 CPU-minutes (23
# minutes on a busy 2-core machine) for a package that differs only in optimisation. cargo-deb
# warns that it does not support the dev profile; it builds and strips the binary all the same.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n--- %s\n' "$*"; }
fail() {
    echo "deb.sh: $*" >&2
    exit 1
}

package=sip-settings
user=sip-settings
data=/var/lib/sip-settings
config=/etc/sip-settings/config.toml
unit=/usr/lib/systemd/system/sip-settings.service
profile="${DEB_PROFILE:-release}"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
[[ -n "$version" ]] || fail "no version in Cargo.toml"
target_dir="${CARGO_TARGET_DIR:-target}"
deb="$target_dir/debian/${package}_${version}_amd64.deb"

# --- tools ---------------------------------------------------------------------------------------
# Pinned: a new cargo-deb may change the maintainer scripts it writes. Raise it on purpose.
cargo_deb_version="3.8.0"
if ! cargo deb --version 2>/dev/null | grep -qF "$cargo_deb_version"; then
    log "installing cargo-deb $cargo_deb_version"
    cargo install --locked --quiet cargo-deb --version "$cargo_deb_version"
fi
missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v adduser >/dev/null 2>&1 || missing+=(adduser)
[[ -x /bin/kill ]] || missing+=(procps)
command -v strace >/dev/null 2>&1 || missing+=(strace)
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- a clean start, and a clean end whatever happens -----------------------------------------------
purge() {
    if dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install\|config-files'; then
        dpkg --purge "$package" >/dev/null
    fi
}
work="$(mktemp -d)"
chmod 0755 "$work"
server_pid=""
cleanup() {
    local status=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if ((status != 0)) && [[ -s "$work/server.log" ]]; then
        echo "server log:" >&2
        tail -n 30 "$work/server.log" >&2
    fi
    purge || true
    rm -rf "$work"
}
trap cleanup EXIT
if dpkg-query -W "$package" >/dev/null 2>&1; then
    log "purging an earlier installation"
    purge
fi
# What a purge should have removed, left by an interrupted run: the first installation below
# must find none of it.
if [[ -e "$data" ]] || getent passwd "$user" >/dev/null || getent group "$user" >/dev/null; then
    log "removing $data and the user $user left by an earlier run"
    rm -rf "$data"
    ! getent passwd "$user" >/dev/null || userdel "$user"
    ! getent group "$user" >/dev/null || groupdel "$user"
fi

# --- the package -----------------------------------------------------------------------------------
log "cargo deb (profile $profile)"
rm -f "$target_dir"/debian/"${package}"_*.deb
build_started=$SECONDS
cargo deb -p sip-settings --locked --profile "$profile" --fast
echo "built in $((SECONDS - build_started)) s"
[[ -f "$deb" ]] || fail "expected $deb; target/debian has: $(ls "$target_dir/debian")"

log "checking $(basename "$deb")"
dpkg-deb --info "$deb" >"$work/info"
dpkg-deb --contents "$deb" >"$work/contents"
cat "$work/info" "$work/contents"
field() { dpkg-deb --field "$deb" "$1"; }
[[ "$(field Package)" == "$package" ]] || fail "Package: $(field Package)"
[[ "$(field Version)" == "$version" ]] || fail "Version: $(field Version), not $version"
[[ "$(field Architecture)" == amd64 ]] || fail "Architecture: $(field Architecture)"
for dep in libc6 adduser procps; do
    field Depends | grep -qw "$dep" || fail "Depends lacks $dep: $(field Depends)"
done
for path in ./usr/bin/sip-settings ./usr/lib/systemd/system/sip-settings.service \
    ./etc/sip-settings/config.toml ./usr/share/doc/sip-settings/README.md; do
    awk '{print $NF}' "$work/contents" | grep -qxF "$path" || fail "$path is not in the package"
done
mkdir "$work/control"
dpkg-deb --control "$deb" "$work/control"
grep -qxF /etc/sip-settings/config.toml "$work/control/conffiles" || fail "config.toml is not a conffile"
for script in postinst prerm postrm; do
    [[ -x "$work/control/$script" ]] || fail "no executable $script"
    sh -n "$work/control/$script" || fail "$script: syntax error"
    ! grep -q '#DEBHELPER#' "$work/control/$script" || fail "$script: #DEBHELPER# left in place"
done
grep -q 'deb-systemd-helper enable sip-settings.service' "$work/control/postinst" \
    || fail "postinst does not enable the unit"
grep -q 'deb-systemd-invoke stop sip-settings.service' "$work/control/prerm" \
    || fail "prerm does not stop the unit"
grep -q 'deb-systemd-helper purge sip-settings.service' "$work/control/postrm" \
    || fail "postrm does not forget the unit on purge"

# --- install -----------------------------------------------------------------------------------------
log "dpkg -i"
dpkg -i "$deb"
# stat_is PATH 'MODE OWNER:GROUP'
stat_is() {
    local got
    got="$(stat -c '%a %U:%G' "$1")"
    [[ "$got" == "$2" ]] || fail "$1 is $got, expected $2"
}
getent passwd "$user" | grep -qE "^$user:x:[0-9]+:[0-9]+:[^:]*:$data:/usr/sbin/nologin$" \
    || fail "user: $(getent passwd "$user" || echo missing)"
(($(id -u "$user") < 1000)) || fail "$user is not a system user"
getent group "$user" >/dev/null || fail "no group $user"
stat_is "$data" "750 $user:$user"
stat_is "$config" "640 root:$user"
# postinst ran `init` on this first installation.
stat_is "$data/ca.key" "600 $user:$user"
stat_is "$data/server.key" "600 $user:$user"
stat_is "$data/sip-settings.db" "600 $user:$user"
ca_sum="$(sha256sum <"$data/ca.key")"
[[ -L /etc/systemd/system/multi-user.target.wants/sip-settings.service ]] \
    || fail "the unit is not enabled"
/usr/bin/sip-settings --version

log "systemd-analyze verify $unit"
# Other units of the machine may draw warnings; none may name ours.
status=0
analyze="$(systemd-analyze verify "$unit" 2>&1)" || status=$?
[[ -z "$analyze" ]] || echo "$analyze"
if grep -i 'sip-settings' <<<"$analyze" >/dev/null; then
    fail "systemd-analyze verify found fault with the unit"
fi
((status == 0)) || echo "(systemd-analyze verify exited $status, about other units)"
log "systemd-analyze security (exposure, 0 best .. 10 worst)"
systemd-analyze security --offline=yes --no-pager "$unit" | tail -n 1
# The unit's hardening measured: fails if an edit loosens it past this level.
systemd-analyze security --offline=yes --threshold=20 "$unit" >/dev/null \
    || fail "the unit's exposure rose above 2.0 (systemd-analyze security --offline=yes $unit)"

# --- the installed binary as the package's user -------------------------------------------------------
# as_user CMD...: the CLI as the service's user, with the installed configuration.
as_user() { (cd / && runuser -u "$user" -- /usr/bin/sip-settings --config "$config" "$@"); }

log "the CLI as $user"
as_user init | tee "$work/init.out"
grep -q created "$work/init.out" && fail "init created something after postinst's init"
as_user domain add example.com
as_user account add alice@example.com --password 'alice-sip-password'
certs="$work/certs"
install -d -o "$user" -g "$user" -m 0700 "$certs"
as_user cert issue alice@example.com --out "$certs"
crt="$certs/alice@example.com.crt"
[[ -s "$crt" ]] || fail "cert issue wrote no $crt"

# Every commented key of the shipped configuration is one the binary takes, with a valid value.
sed -E -e '/^#database = "postgres/d' -e 's/^#(\[|[a-z_]+ = )/\1/' "$config" >"$work/all-keys.toml"
chmod 0644 "$work/all-keys.toml"
(cd / && runuser -u "$user" -- /usr/bin/sip-settings --config "$work/all-keys.toml" domain list) \
    | grep -qx example.com || fail "the configuration with every key uncommented is refused"

# mdwe CMD...: CMD under prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN), the kernel's form of the
# unit's MemoryDenyWriteExecute=yes (kept across exec). perl is essential on Debian.
# (157: prctl on x86_64; 65: PR_SET_MDWE; 1: PR_MDWE_REFUSE_EXEC_GAIN.)
mdwe_perl='syscall(157, 65, 1, 0, 0, 0) == 0 or die "prctl(PR_SET_MDWE): $!\n"; exec @ARGV or die "exec: $!\n"'
mdwe() { perl -e "$mdwe_perl" -- "$@"; }
# The check can fail: a program that asks for memory both writable and executable is refused
# (9: mmap; 7: PROT_READ|PROT_WRITE|PROT_EXEC; 0x22: MAP_PRIVATE|MAP_ANONYMOUS).
mmap_wx='syscall(9, 0, 4096, 7, 0x22, -1, 0) == -1 and exit 3; exit 0'
perl -e "$mmap_wx" || fail "this kernel refuses W+X mappings already; the check would prove nothing"
status=0
mdwe perl -e "$mmap_wx" || status=$?
((status == 3)) || fail "prctl(PR_SET_MDWE) did not refuse a W+X mapping (status $status)"

log "serve as $user with $config (no new privileges, memory-deny-write-execute, traced)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
trace="$work/trace"
install -d -o "$user" -g "$user" -m 0700 "$trace"
# setpriv execs (runuser would fork and hide the server's exit status); strace records every
# system call for the unit's SystemCallFilter= below and exits with the server's status.
(cd / && umask 077 && exec setpriv --reuid "$user" --regid "$user" --init-groups --no-new-privs \
    perl -e "$mdwe_perl" -- \
    strace -f -qq -o "$trace/syscalls" \
    /usr/bin/sip-settings --data-dir "$data" --config "$config" serve --listen "127.0.0.1:$port") \
    >"$work/server.log" 2>&1 &
server_pid=$!
base="https://localhost:$port"
for _ in $(seq 1 100); do
    curl -s -o /dev/null --cacert "$data/ca.crt" "$base/" && break
    kill -0 "$server_pid" 2>/dev/null || fail "serve exited at start"
    sleep 0.1
done
serve_pid="$(pgrep -P "$server_pid" -x sip-settings)" || fail "no sip-settings under strace"
[[ "$(ps -o uid= -p "$serve_pid" | tr -d ' ')" == "$(id -u "$user")" ]] || fail "serve does not run as $user"
grep -q '^NoNewPrivs:[[:space:]]*1' "/proc/$serve_pid/status" || fail "serve has new privileges"
curl -sS --fail --cert "$crt" --cacert "$data/ca.crt" "$base/v1/me" -o "$work/me.json" \
    || fail "GET /v1/me with alice's certificate failed"
cat "$work/me.json"
echo
python3 -c 'import json, sys; me = json.load(open(sys.argv[1])); assert me["address"] == "alice@example.com", me' \
    "$work/me.json" || fail "GET /v1/me did not answer alice's account"
code="$(curl -s -o /dev/null -w '%{http_code}' --cacert "$data/ca.crt" "$base/v1/me" || true)"
[[ "$code" != 200 ]] || fail "GET /v1/me without a client certificate answered 200"

code="$(curl -s -o /dev/null -w '%{http_code}' -X PATCH -H 'Content-Type: application/json' \
    -d '{"first_name": "Alice"}' --cert "$crt" --cacert "$data/ca.crt" "$base/v1/me")"
[[ "$code" == 200 ]] || fail "PATCH /v1/me answered $code"

log "SIGTERM"
kill -TERM "$serve_pid"
for _ in $(seq 1 300); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$server_pid" 2>/dev/null && fail "serve still runs 30 s after SIGTERM"
status=0
wait "$server_pid" || status=$?
server_pid=""
((status == 0)) || fail "serve exited with status $status after SIGTERM"
echo "serve exited 0"

log "system calls of serve against the unit's SystemCallFilter="
# group NAME: the system calls of a systemd set, nested sets expanded.
group() {
    systemd-analyze syscall-filter "$1" | sed -n '2,$p' | grep -vE '^[[:space:]]*(#|$)' | tr -d ' ' |
        while read -r name; do
            case "$name" in
                @*) group "$name" ;;
                *) echo "$name" ;;
            esac
        done
}
group @system-service | sort -u >"$work/allowed"
{ group @privileged; group @resources; } | sort -u >"$work/denied"
sed -E 's/^[0-9]+ +//; s/\(.*//' "$trace/syscalls" | grep -E '^[a-z0-9_]+$' | sort -u >"$work/used"
(($(wc -l <"$work/used") > 20)) || fail "the trace holds too few system calls: $(cat "$work/used")"
echo "$(wc -l <"$work/used") distinct system calls"
outside="$(comm -23 "$work/used" "$work/allowed")"
[[ -z "$outside" ]] || fail "serve makes system calls outside @system-service: $outside"
inside="$(comm -12 "$work/used" "$work/denied")"
[[ -z "$inside" ]] || fail "serve makes system calls of @privileged or @resources: $inside"

log "backup as $user, and the copy read back"
as_user backup --out "$certs/backup.db"
(cd / && runuser -u "$user" -- /usr/bin/sip-settings --data-dir "$data" \
    --database "sqlite://$certs/backup.db" account list) | grep -q alice@example.com \
    || fail "the backup does not hold alice's account"

# --- upgrade, remove, purge ---------------------------------------------------------------------------
log "upgrade in place (dpkg -i again): the CA and a changed conffile are kept"
echo '# changed by the administrator' >>"$config"
dpkg -i "$deb"
grep -qxF '# changed by the administrator' "$config" || fail "the upgrade replaced the changed config.toml"
[[ "$(sha256sum <"$data/ca.key")" == "$ca_sum" ]] || fail "the upgrade replaced the CA key"
stat_is "$config" "640 root:$user"
as_user account list | grep -q alice@example.com || fail "the upgrade lost the database"

log "dpkg --remove: the program goes, the configuration, the data and the user stay"
dpkg --remove "$package"
[[ ! -e /usr/bin/sip-settings && ! -e "$unit" ]] || fail "remove left the program or the unit"
[[ -f "$config" && -f "$data/ca.key" && -f "$data/sip-settings.db" ]] || fail "remove deleted data"
getent passwd "$user" >/dev/null || fail "remove deleted the user"

log "dpkg --purge: everything goes"
dpkg --purge "$package"
for path in "$data" /etc/sip-settings /etc/systemd/system/multi-user.target.wants/sip-settings.service; do
    [[ ! -e "$path" && ! -L "$path" ]] || fail "purge left $path"
done
! getent passwd "$user" >/dev/null || fail "purge left the user"
! getent group "$user" >/dev/null || fail "purge left the group"
echo "deb.sh: the package builds, installs, serves, upgrades, removes and purges"
