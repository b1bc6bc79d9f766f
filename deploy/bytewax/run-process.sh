#!/usr/bin/env bash
# Start process I (0-based) of the interlock cluster; N is the number of lines in the addresses file.
#
#   deploy/bytewax/run-process.sh I
#
# Settings come from the environment (deploy/bytewax/interlock.env; systemd sets them through
# EnvironmentFile=, a manual run can point INTERLOCK_ENV_FILE at the file). Runs, replacing this shell:
#
#   interlock run --bootstrap SERVERS --metrics-port (BASE + I) --recovery-dir DIR --config FILE \
#                 --process-id I --addresses FILE [--shards INTERLOCK_SHARDS]
#
# with BYTEWAX_SNAPSHOT_INTERVAL and BYTEWAX_RECOVERY_BACKUP_INTERVAL exported (seconds; the names
# `python -m bytewax.run` reads for -s and -b). `interlock run` is the live entry point; it runs the
# same cluster as bytewax's own runner would with
#
#   python -m bytewax.run dataflows.live:flow -w 1 -i I -a "$(paste -sd';' hosts.txt)" \
#          -r DIR -s SNAPSHOT_S -b BACKUP_S
#
# (bytewax.run takes -a as a ';'-separated list, not a file; -s and -b are required with -r).
# INTERLOCK_DRY_RUN=1 prints the command instead of running it.
set -euo pipefail

if [ $# -ne 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 PROCESS_ID   (0-based line number in the addresses file)" >&2
    exit 2
fi
process_id=$1

if [ -n "${INTERLOCK_ENV_FILE:-}" ]; then
    set -a
    # shellcheck source=interlock.env
    . "$INTERLOCK_ENV_FILE"
    set +a
fi

for name in INTERLOCK_BOOTSTRAP INTERLOCK_CONFIG INTERLOCK_ADDRESSES INTERLOCK_RECOVERY_DIR; do
    if [ -z "${!name:-}" ]; then
        echo "$0: $name is not set (see deploy/bytewax/interlock.env)" >&2
        exit 2
    fi
done

if [ ! -r "$INTERLOCK_ADDRESSES" ]; then
    echo "$0: cannot read the addresses file $INTERLOCK_ADDRESSES" >&2
    exit 2
fi
process_count=$(grep -c '[^[:space:]]' "$INTERLOCK_ADDRESSES" || true)
if [ "$process_id" -ge "$process_count" ]; then
    echo "$0: process id $process_id, but $INTERLOCK_ADDRESSES lists $process_count processes (ids 0..$((process_count - 1)))" >&2
    exit 2
fi

# An uninitialised recovery directory is an error, not something to fix silently: after a disk loss,
# fresh partitions would make the cluster forget its state (latched trips among it).
if ! compgen -G "$INTERLOCK_RECOVERY_DIR/part-*.sqlite3" > /dev/null; then
    echo "$0: no recovery partitions in $INTERLOCK_RECOVERY_DIR; on a new installation run" \
         "deploy/bytewax/init-recovery.sh once (deploy/README.md), after a loss restore them from backup" >&2
    exit 3
fi

metrics_port=$(( ${INTERLOCK_METRICS_PORT_BASE:-9464} + process_id ))
export BYTEWAX_SNAPSHOT_INTERVAL=${INTERLOCK_SNAPSHOT_INTERVAL_S:-10}
export BYTEWAX_RECOVERY_BACKUP_INTERVAL=${INTERLOCK_BACKUP_INTERVAL_S:-0}

command=(
    "${INTERLOCK_BIN:-interlock}" run
    --bootstrap "$INTERLOCK_BOOTSTRAP"
    --metrics-port "$metrics_port"
    --recovery-dir "$INTERLOCK_RECOVERY_DIR"
    --config "$INTERLOCK_CONFIG"
    --process-id "$process_id"
    --addresses "$INTERLOCK_ADDRESSES"
    --snapshot-interval "$BYTEWAX_SNAPSHOT_INTERVAL"
)
if [ -n "${INTERLOCK_SHARDS:-}" ]; then
    command+=(--shards "$INTERLOCK_SHARDS")
fi
if [ "${INTERLOCK_DRY_RUN:-0}" = 1 ]; then
    echo "BYTEWAX_SNAPSHOT_INTERVAL=$BYTEWAX_SNAPSHOT_INTERVAL BYTEWAX_RECOVERY_BACKUP_INTERVAL=$BYTEWAX_RECOVERY_BACKUP_INTERVAL ${command[*]}"
    exit 0
fi
exec "${command[@]}"
