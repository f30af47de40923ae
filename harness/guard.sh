#!/bin/sh
# harness guard: self-fencing when the daemon dies without stopping its resources.
#
# The daemon starts this tiny process (a shell, ~1 MiB, so it adds almost nothing to the node's
# footprint) in its own session, with a pipe on stdin. The pipe closes however the daemon ends:
# clean exit, crash, SIGKILL, OOM kill. If the daemon left a stop script behind (it deletes it
# after a clean shutdown and rewrites it whenever what runs or is owned here changes), that script
# runs at once: it holds the hierarchies' disks (peers see a live key and wait) while it stops
# their resources, then releases them so a peer takes over at once (guard-lib.sh).
# Usage: guard.sh <stop-script>
script="$1"
# Block until EOF on stdin (the daemon's end of the pipe is gone).
while IFS= read -r _line; do :; done
if [ -s "$script" ]; then
    echo "harness guard: daemon gone, stopping its hierarchies ($script)" >&2
    exec /bin/sh "$script"
fi
exit 0
