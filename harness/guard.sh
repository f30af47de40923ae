#!/bin/sh
# harness guard: self-fencing when the daemon dies without stopping its resources.
#
# The daemon starts this tiny process (a shell, ~1 MiB, so it adds almost nothing to the node's
# footprint) in its own session, with a pipe on stdin. The pipe closes however the daemon ends:
# clean exit, crash, SIGKILL, OOM kill. If the daemon left a stop script behind (it deletes it
# after a clean shutdown and rewrites it whenever a hierarchy comes into or goes out of service),
# the hierarchies it ran are stopped here at once, so a VIP cannot keep answering from a node
# whose daemon is gone while a peer takes over (peers wait for the dead time plus the frozen-key
# window before preempting, far longer than these stops take).
# Usage: guard.sh <stop-script>
script="$1"
# Block until EOF on stdin (the daemon's end of the pipe is gone).
while IFS= read -r _line; do :; done
if [ -s "$script" ]; then
    echo "harness guard: daemon gone, stopping its hierarchies ($script)" >&2
    exec /bin/sh "$script"
fi
exit 0
