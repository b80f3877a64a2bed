#!/bin/sh
# The glue between the harness and a charger emulator, for the `command` backend (the profiles'
# [rig.command] calls `sh emulator.sh <act> ...` in this folder). Exit status 0 = done; anything else
# makes the test a rig error (not a charger failure), with this script's output.
#
# Here the emulator is the harness's own reference charger run as a separate process
# (`python -m harness.sim`), standing in for yours: REPLACE the commands marked REPLACE with your
# emulator's (how to start it, stop it, plug an EV in, present a card, ...). Keep the interface: the
# subcommands and their arguments are what the profile passes.
#
# Environment (set it in the CI job; neither is needed for your emulator):
#   EMULATOR_CONTROL_PORT  the stand-in's control API port (default 8701)
#   EMULATOR_ARGS          extra arguments for the stand-in, e.g. "--defect never-faulted" to see the gate
#                          fail (tests/test_ci_examples.py does exactly that)
# The harness gives `start` the AuthorizationKey as HARNESS_AUTHORIZATION_KEY: pass it on in the
# environment, never on a command line (every user of the machine can read those).
set -eu

control="http://127.0.0.1:${EMULATOR_CONTROL_PORT:-8701}"
post() {  # POST to the stand-in's control API: post PATH [NAME=VALUE ...] (values URL-encoded)
    path=$1
    shift
    n=$#
    for arg in "$@"; do set -- "$@" --data-urlencode "$arg"; done
    shift "$n"
    curl -fsS --max-time 20 -X POST -G "$@" "$control/$path"
}

act=$1
shift
case "$act" in
start)  # start URL CA_FILE CHARGER_ID SECURITY_PROFILE [emulator arguments]
    url=$1 ca_file=$2 id=$3 security_profile=$4
    shift 4
    # REPLACE: launch your emulator in the background, pointed at the harness (URL: wss://127.0.0.1:PORT/ocpp;
    # the charger appends /<id>), trusting CA_FILE, with the key from HARNESS_AUTHORIZATION_KEY. Return once it
    # is launched: the harness then waits for it to connect and boot.
    # shellcheck disable=SC2086  # EMULATOR_ARGS: several words on purpose
    python -m harness.sim --url "$url" --ca "$ca_file" --id "$id" --security-profile "$security_profile" \
        --password-env HARNESS_AUTHORIZATION_KEY --control-port "${EMULATOR_CONTROL_PORT:-8701}" --quiet \
        "$@" ${EMULATOR_ARGS:-} > "emulator-$id.log" 2>&1 &
    echo $! > "emulator-$id.pid"
    echo "emulator started (pid $!), log: examples/ci/emulator-$id.log"
    ;;
stop)  # stop CHARGER_ID
    # REPLACE: stop your emulator.
    pid_file="emulator-$1.pid"
    if [ -f "$pid_file" ]; then
        kill "$(cat "$pid_file")" 2>/dev/null || true  # it may have stopped by itself: nothing left to do
        rm -f "$pid_file"
    fi
    ;;
# REPLACE each act below with your emulator's way of doing it.
plugin)     post plugin "connector=$1" ;;                              # plugin CONNECTOR
plugout)    post plugout "connector=$1" ;;                             # plugout CONNECTOR
authorize)  post authorize "id=$1" "connector=$2" ;;                   # authorize ID_TAG CONNECTOR
ev)         post ev "connector=$1" "suspended=$2" ;;                   # ev CONNECTOR true|false (EV pauses / resumes)
fault)      post state "connector=$1" "faulted=$2" ;;                  # fault CONNECTOR true|false
network)    post network "online=$1" ;;                                # network true|false (false = cut)
reboot)     post reboot ;;                                             # reboot (power-cycle)
*)
    echo "emulator.sh: unknown act '$act'" >&2
    exit 2
    ;;
esac
