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
# This guard leads a session of its own (a signal to the daemon's process group must miss it). With
# the kernel's autogroup scheduling a new session starts at nice 0, whatever the nice value its
# processes inherited from the daemon: under CPU load the key refresh then fell behind the
# liveness window and a peer preempted while this node still stopped its VIP. Give the session the
# daemon's raised priority (our nice value; node.ts raisePriority), as the daemon gives its own.
hg_nice=$(nice 2>/dev/null) && [ "$hg_nice" -lt 0 ] 2>/dev/null && { echo "$hg_nice" >/proc/self/autogroup; } 2>/dev/null
# Block until EOF on stdin (the daemon's end of the pipe is gone).
while IFS= read -r _line; do :; done
if [ -s "$script" ]; then
    hg_group=; { read -r hg_group </proc/self/autogroup; } 2>/dev/null
    echo "harness guard: daemon gone, stopping its hierarchies ($script; nice ${hg_nice:-?}, ${hg_group:-no autogroup})" >&2
    exec /bin/sh "$script"
fi
exit 0
