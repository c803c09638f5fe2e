#!/bin/sh
# Makes a throwaway PKI for the controller tests in DIR: a test CA, a server
# certificate for 127.0.0.1/localhost and a client certificate, all signed by
# the CA, plus a second CA the agent must not trust. EC P-256 keys: fast.
# Usage: make-test-ca.sh DIR
set -eu
dir=${1:?usage: make-test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

make_ca() {  # name common-name
  newkey "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.crt" -days 2 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
}

sign() {  # name common-name extensions
  newkey "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out "$1.crt" -days 2 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

make_ca ca "hostmaint test CA"
make_ca other-ca "hostmaint untrusted CA"
sign server 127.0.0.1 "$(printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth')"
sign client hostmaint-agent "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
