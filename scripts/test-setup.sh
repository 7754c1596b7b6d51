#!/usr/bin/env bash
# Everything the test suite talks to, on a fresh Debian machine: system packages (Prometheus,
# systemd-analyze), a running PostgreSQL, and the virtual environment with the test extras.
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# One line per Debian package: the command that proves it is present, then the package.
need=()
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
want prometheus prometheus                               # metrics tests, PromQL of the dashboards
want systemd-analyze systemd                             # unit file checks
want pg_ctlcluster postgresql                            # storage tests
want snmpd snmpd                                         # live SNMP agent in a namespace
want snmpget snmp                                        # snmptrap, snmpwalk
want snmptrapd snmptrapd                                 # (trap tools)
want prometheus-snmp-exporter prometheus-snmp-exporter   # SNMP benchmark peer
want tcpreplay tcpreplay                                 # live traffic scenarios
want tcpdump tcpdump                                     # capture benchmark peer
want nmap nmap                                           # port scan scenario
want hping3 hping3                                       # flood scenario
want sshd openssh-server                                 # netmiko target
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
want chromium chromium                                   # web desk browser tests
want ip iproute2                                         # network namespaces
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "starting PostgreSQL"
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; then
  # A fresh Debian cluster asks for a password on TCP: trust local test connections.
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -n 1)
  as_root sed -i '1i host all postgres 127.0.0.1/32 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
fi

scripts/bootstrap.sh test

# snmpsim (own venv, .snmpsim-venv/) serves the recorded devices to the SNMP tests.
scripts/snmpsim.sh
