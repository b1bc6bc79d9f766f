#!/usr/bin/env bash
# Create the Bytewax recovery partitions of the interlock cluster, once, before its first start.
#
#   deploy/bytewax/init-recovery.sh [DIR [COUNT]]    (defaults: $INTERLOCK_RECOVERY_DIR, $INTERLOCK_RECOVERY_PARTITIONS)
#
# Runs `python -m bytewax.recovery DIR COUNT`, which writes DIR/part-0.sqlite3 .. part-(COUNT-1).sqlite3
# into an existing directory (it fails if DIR is missing, and crashes if partitions already exist).
# This script creates DIR, and does nothing when partitions are already there, so running it twice
# is harmless. COUNT is fixed once created: choose the most processes the cluster will ever have.
# With several hosts, run it on one host, then move the part-N.sqlite3* files so that every host
# holds some and the cluster as a whole holds all (Bytewax resumes only if every partition is found).
set -euo pipefail

dir=${1:-${INTERLOCK_RECOVERY_DIR:-}}
count=${2:-${INTERLOCK_RECOVERY_PARTITIONS:-}}
if [ -z "$dir" ] || ! [[ $count =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 DIR COUNT   (or set INTERLOCK_RECOVERY_DIR and INTERLOCK_RECOVERY_PARTITIONS)" >&2
    exit 2
fi
python=${INTERLOCK_PYTHON:-python3}

mkdir -p "$dir"
exec 9> "$dir/.init-recovery.lock"
flock 9   # two processes of one host starting together must not both initialise

existing=$(find "$dir" -maxdepth 1 -name 'part-*.sqlite3' | wc -l)
if [ "$existing" -gt 0 ]; then
    echo "$dir already holds $existing recovery partitions; nothing done"
    exit 0
fi
"$python" -m bytewax.recovery "$dir" "$count"
echo "created $count recovery partitions in $dir"
