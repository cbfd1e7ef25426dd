# common.sh: shared helpers for the integration scripts (sourced, bash).
#
# Each script prints "ok - what" / "not ok - what" lines; tests/run-tests.sh
# counts them. Everything a script starts is recorded and killed by PID on
# exit, and every wait is bounded.
set -u
PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TB=${TB:-${O:-build}/tunnelbox}
WORK=$(mktemp -d /tmp/tb-it.XXXXXX)
PIDS=()
FAILS=0

cleanup() {
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null
	done
	sleep 0.1
	for p in "${PIDS[@]:-}"; do
		[ -n "$p" ] && kill -9 "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}
trap cleanup EXIT

ok() { echo "ok - $*"; }
notok() { echo "not ok - $*"; FAILS=$((FAILS + 1)); }
check() { # check "description" command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
finish() { [ "$FAILS" -eq 0 ]; exit $?; }

# A free TCP port on 127.0.0.1 (the kernel's pick; then released).
free_port() {
	$PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT [SECONDS]: until something accepts on 127.0.0.1:PORT.
wait_port() {
	local port=$1 limit=${2:-5} i
	for ((i = 0; i < limit * 20; i++)); do
		if $PY -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; then
			return 0
		fi
		sleep 0.05
	done
	return 1
}

# start_gateway CONFIG_FILE [extra args]: starts tunnelbox, sets GW_PID.
start_gateway() {
	local conf=$1
	shift
	"$TB" -c "$conf" "$@" >"$WORK/gw.log" 2>&1 &
	GW_PID=$!
	PIDS+=("$GW_PID")
}

# start_http_server DIR: python's http.server on a free port; sets HTTP_PORT.
start_http_server() {
	HTTP_PORT=$(free_port)
	(cd "$1" && exec $PY -m http.server --bind 127.0.0.1 "$HTTP_PORT" >/dev/null 2>&1) &
	PIDS+=("$!")
	wait_port "$HTTP_PORT" 10
}

# A config with one listener of PROTO on PORT to `direct`.
simple_config() { # simple_config FILE PROTO PORT [extra listener lines]
	cat >"$1" <<EOC
[[listener]]
name = "in"
proto = "$2"
endpoint = "127.0.0.1:$3"
router = "main"
${4:-}

[[connector]]
name = "direct"
proto = "direct"

[[connector]]
name = "deny"
proto = "block"

[[router]]
name = "main"
default = "direct"
EOC
}

fd_count() { ls /proc/"$1"/fd 2>/dev/null | wc -l; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# Absolute paths, so scripts may cd and symlink freely.
ROOT=$(cd "$HERE/../../.." && pwd)
OUT=${O:-build}
case $OUT in /*) ;; *) OUT=$ROOT/$OUT ;; esac
case $TB in /*) ;; *) TB=$ROOT/$TB ;; esac

has_config() { grep -q "^CONFIG_$1=y" "$OUT/.config" 2>/dev/null; }
need_config() { # need_config SYMBOL: skipped (exit 77) unless it is built in
	has_config "$1" && return 0
	echo "# CONFIG_$1 is not set in $OUT/.config"
	exit 77
}

start() { # start LOG CMD...: runs CMD in the background, sets LAST_PID
	local log=$1
	shift
	"$@" >"$WORK/$log" 2>&1 &
	LAST_PID=$!
	PIDS+=("$LAST_PID")
}
show() { # show LOG...: the logs of a failed step, as comments
	for f in "$@"; do sed "s/^/# $f: /" "$WORK/$f"; done
}

# mkcerts: test certificates in $WORK: a CA (ca.pem, ca.key), another CA
# (other.pem), and a server certificate signed by the first (srv.pem,
# srv.key) for localhost and 127.0.0.1. Run it in a subshell: it cd's.
mkcerts() {
	local k=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
	cd "$WORK" || return 1
	openssl req -x509 "${k[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=tb-test-ca &&
		openssl req -x509 "${k[@]}" -keyout other.key -out other.pem -days 2 -subj /CN=tb-other-ca &&
		openssl req -new "${k[@]}" -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 &&
		printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >srv.ext &&
		openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
			-extfile srv.ext -out srv.pem
}

# serve_blob BYTES: a random file behind a local HTTP server; sets URL and want.
serve_blob() {
	mkdir -p "$WORK/www"
	head -c "$1" /dev/urandom >"$WORK/www/blob"
	want=$(sha "$WORK/www/blob")
	start_http_server "$WORK/www" || { notok "http server starts"; finish; }
	URL="http://localhost:$HTTP_PORT/blob"
}
fetch_via() { # fetch_via SOCKS_PORT OUT: URL through a SOCKS5 port, intact
	curl -sS --max-time 20 -o "$2" --socks5-hostname "127.0.0.1:$1" "$URL" && [ "$(sha "$2")" = "$want" ]
}
