#!/usr/bin/env bash
# Makes test certificates for `fedtrain server` / `fedtrain worker` over TLS and mutual TLS:
# a private test CA, a server certificate (SANs: localhost, 127.0.0.1 and the given names)
# and a client certificate for the workers, each with its key. For trying TLS and for
# tests; a real deployment should use certificates from its own CA.
# usage: deploy/make_certs.sh OUT_DIR [SERVER_NAME ...]
# SERVER_NAME: a host name or an IP address the workers use to reach the server.
# Writes OUT_DIR/{ca.crt,ca.key,server.crt,server.key,worker.crt,worker.key} (keys mode 600),
# replacing those files when they are there. Needs `openssl`.
set -euo pipefail
if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  echo "usage: $0 OUT_DIR [SERVER_NAME ...]" >&2
  exit 2
fi
out=$1
shift
command -v openssl >/dev/null || { echo "$0: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sans="DNS:localhost,IP:127.0.0.1"
ip_re='^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$'
for name in "$@"; do
  if [[ $name =~ $ip_re || $name == *:* ]]; then sans+=",IP:$name"; else sans+=",DNS:$name"; fi
done

days=3650
newkey() { (umask 077 && openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null); }

# The CA.
newkey "$tmp/ca.key"
openssl req -x509 -new -sha256 -days "$days" -key "$tmp/ca.key" -subj "/CN=fedtrain test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out "$tmp/ca.crt" 2>/dev/null

# sign NAME CN EXTENSIONS: NAME.key and NAME.crt signed by the CA.
sign() {
  newkey "$tmp/$1.key"
  openssl req -new -sha256 -key "$tmp/$1.key" -subj "/CN=$2" -out "$tmp/$1.csr" 2>/dev/null
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -sha256 -days "$days" -in "$tmp/$1.csr" -CA "$tmp/ca.crt" \
    -CAkey "$tmp/ca.key" -set_serial "0x$(openssl rand -hex 16)" -extfile "$tmp/$1.ext" \
    -out "$tmp/$1.crt" 2>/dev/null
}
sign server "fedtrain server" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$sans"
sign worker "fedtrain worker" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"

openssl verify -CAfile "$tmp/ca.crt" "$tmp/server.crt" "$tmp/worker.crt" >/dev/null
for f in ca server worker; do
  install -m 0644 "$tmp/$f.crt" "$out/$f.crt"
  install -m 0600 "$tmp/$f.key" "$out/$f.key"
done
echo "make_certs: wrote to $out:"
echo "  ca.crt       test CA certificate (server --tls-client-ca, worker --tls-ca)"
echo "  ca.key       test CA key (keep it private; only needed to sign more certificates)"
echo "  server.crt   server certificate (--tls-cert), SANs ${sans//,/, }"
echo "  server.key   server key (--tls-key)"
echo "  worker.crt   worker client certificate (worker --tls-cert, for mutual TLS)"
echo "  worker.key   worker client key (worker --tls-key)"
