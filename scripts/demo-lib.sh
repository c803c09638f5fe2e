# Shared by scripts/demo-test-driver and scripts/demo-lab (sourced, not run):
# building, a private system bus with hostmaint's policy, hostmaintd, output.

build=${HOSTMAINT_BUILD_DIR:-$root/build}
bold=$'\e[1m'; dim=$'\e[2m'; reset=$'\e[0m'
[[ -t 1 ]] || { bold=; dim=; reset=; }
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$reset"; }
run() { printf '%s$ %s%s\n' "$dim" "$*" "$reset"; "$@"; }
ctl() { "$build/agent/hostmaintctl" "$@"; }

work=$(mktemp -d /tmp/hostmaint-demo.XXXXXX)
chmod 755 "$work"
demo_pids=()
demo_cleanup_hooks=()
demo_cleanup() {
  for pid in "${demo_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for hook in "${demo_cleanup_hooks[@]}"; do eval "$hook" || true; done
  rm -rf "$work"
}
trap demo_cleanup EXIT

demo_build() {
  "$root/scripts/deps"
  cmake -S "$root" -B "$build" -G Ninja >/dev/null
  cmake --build "$build" -j2 --target hostmaintd hostmaintctl
}

demo_start_bus() {
  step "Starting a private system bus with hostmaint's bus policy"
  mkdir -p "$work/bus/system.d"
  cp "$root/systemd/org.hostmaint.Agent1.conf" "$work/bus/system.d/"
  sed -e "s|@SOCKET_PATH@|$work/bus/system_bus_socket|" -e "s|@POLICY_DIR@|$work/bus/system.d|" \
    "$root/tests/integration/dbus/system-bus.conf.in" > "$work/bus/bus.conf"
  dbus-daemon --config-file="$work/bus/bus.conf" --nofork --print-address=1 > "$work/bus/address" &
  demo_pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/bus/address" ]] && break; sleep 0.05; done
  DBUS_SYSTEM_BUS_ADDRESS=$(head -n1 "$work/bus/address")
  export DBUS_SYSTEM_BUS_ADDRESS
  echo "bus: $DBUS_SYSTEM_BUS_ADDRESS"
}

# Starts hostmaintd on $work/hostmaintd.conf and waits until it answers.
demo_start_daemon() {
  "$build/agent/hostmaintd" --config "$work/hostmaintd.conf" > "$work/hostmaintd.log" 2>&1 &
  demo_pids+=($!)
  for _ in $(seq 200); do
    ctl status >/dev/null 2>&1 && return 0
    kill -0 "${demo_pids[-1]}" 2>/dev/null || { cat "$work/hostmaintd.log"; exit 1; }
    sleep 0.05
  done
  echo "hostmaintd did not answer on the bus; its log:" >&2
  cat "$work/hostmaintd.log" >&2
  exit 1
}

demo_show_evidence() {
  python3 - "$work/run/status.json" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
for check in status["evidence"]:
    print(f"  {'ok ' if check['ok'] else 'NO '} {check['check']:<24} {check['detail']}")
PY
}
