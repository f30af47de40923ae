# harness guard library: sourced by the stop script the daemon writes (harness/guard.ts).
#
# When the daemon dies, its guard stops what ran here. Peers must not start a hierarchy while that
# stop runs, and must not have to wait once it is done. So, for every hierarchy this node owns:
#   1. at once, a background loop keeps moving this node's key generation on the hierarchy's disks
#      (the keeper's refresh, every keyRefreshMs): peers see a live holder and do not preempt;
#   2. the hierarchy's resources are stopped (client-facing ones, VIPs, as early as the dependency
#      tree allows);
#   3. if every stop succeeded, this node moves its key on those disks to the released marker
#      (fencing/keys.ts): a peer preempts it at once, without waiting for the liveness window.
# A stop that fails keeps the disks (nothing may start next to a half-stopped copy): the refresh
# ends, the key freezes, and peers preempt as they would a dead node. The refresh loop also ends at
# the script's deadline (the sum of its stop timeouts) and when the guard itself dies, so a hung or
# killed guard cannot hold a hierarchy for ever.
# A hierarchy's refresh and its release exclude each other (lock.INDEX): a refresh in flight would
# otherwise move the key under the release (conflict: "release FAILED") or revive the released
# marker after it (peers then wait for the liveness window and preempt). The refresher never waits
# for that lock (a busy one means the hierarchy is being released: skipped), so one hierarchy's
# release cannot stall the others' refreshes; a release waits only for a refresh in flight.
#
# Two backends, the same PR rules as fencing/file.ts and fencing/scsi.ts:
#   scsi: REGISTER rk=current sark=next (conditional: a preempted path answers conflict and is
#         never re-registered); release is the same REGISTER to the released marker;
#   file: the same two operations on the JSON state file, under its lock-file protocol.
# Plain POSIX sh plus coreutils' date/sleep/stat/timeout and awk: this must run when nothing else does.

HG_DIR=
HG_HOLDS=0
HG_IDX=
HG_ERR=
HG_DEADLINE=
HG_MAIN=$$
HG_REFRESHER=

hg_log() { printf 'harness guard: %s\n' "$*" >&2; }
hg_ms() { date +%s%3N; }

# hg_init BACKEND NODEPART REFRESH_S BOUND_S INITIATOR LOCK_STALE_MS [AGENT_NICE_INCREMENT]
# The stops run that much nicer than the guard (the agents' nice value, as under the daemon): the
# key refresh is what keeps peers from starting the hierarchy next to a half-stopped copy, and it
# must not queue behind the agents' CPU.
hg_init() {
	HG_BACKEND=$1 HG_NODEPART=$2 HG_REFRESH=$3 HG_BOUND=$4 HG_INITIATOR=$5 HG_LOCK_STALE_MS=$6 HG_AGENT_NICE=${7:-0}
	HG_T0=$(hg_ms)
	HG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/harness-guard.XXXXXXXX") || exit 1
	HG_RELEASED_KEY=$(printf '0x%sffffffff' "$HG_NODEPART") # fencing/keys.ts RELEASED_GENERATION
	HG_NS=$(readlink /proc/self/ns/pid 2>/dev/null)
	HG_HOST=$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)
}

# hg_hold INDEX DISK... — hierarchy INDEX owns these disks (scsi: "path path…" per disk; file: state file).
hg_hold() {
	_i=$1; shift
	for _d in "$@"; do printf '%s\n' "$_d" >>"$HG_DIR/hold.$_i"; done
	HG_HOLDS=$((HG_HOLDS + 1))
	HG_IDX="$HG_IDX $_i"
}

# hg_trylock INDEX / hg_lock INDEX / hg_unlock INDEX — one hierarchy's refresh or release at a
# time (mkdir is atomic). hg_trylock: 0 taken; 1 busy; 2 the lock cannot be made (HG_DIR broken:
# callers go on without it, the disks' own rules still never revive a released key).
hg_trylock() {
	mkdir "$HG_DIR/lock.$1" 2>/dev/null && return 0
	[ -d "$HG_DIR/lock.$1" ] && return 1
	return 2
}
# Only the refresher takes a lock besides the hierarchy's own subshell: wait while it lives, as
# long as a refresh pass can take past the deadline (5 s sg_persist timeouts), then take it over.
hg_lock() {
	_lu=$((HG_DEADLINE + 60000))
	while :; do
		hg_trylock "$1"
		case $? in 0 | 2) return 0 ;; esac
		if ! kill -0 "$HG_REFRESHER" 2>/dev/null || [ "$(hg_ms)" -gt "$_lu" ]; then
			hg_log "lock of hierarchy $1 left by the refresher (gone or stuck): taken over"
			return 0
		fi
		sleep 0.005
	done
}
hg_unlock() { rmdir "$HG_DIR/lock.$1" 2>/dev/null; }
hg_released() { [ -e "$HG_DIR/released.$1" ]; }

# --- the key of this node as the disks print it: 0x<node part><8-digit generation> ------------
hg_next_key() { # KEY (ours) -> same node part, generation + 1 (wrapping at 2^32, skipping the released marker)
	_g=${1#0x"$HG_NODEPART"}
	_n=$(((0x$_g + 1) & 0xffffffff))
	[ $_n = 4294967295 ] && _n=0
	printf '0x%s%08x' "$HG_NODEPART" $_n
}
hg_is_mine() { # KEY: does it carry our node part?
	case $1 in 0x"$HG_NODEPART"????????) return 0 ;; *) return 1 ;; esac
}

# --- scsi -------------------------------------------------------------------------------------
hg_sg() { # sg_persist, again after a unit attention (6) or not ready (2), as fencing/scsi.ts does
	_n=0
	while :; do
		# stderr into _e, stdout through fd 3 to the caller: no temp file on the routine path.
		{ _e=$(timeout -s KILL 5 sg_persist -n "$@" </dev/null 2>&1 1>&3 3>&-); _rc=$?; } 3>&1
		case $_rc in 2 | 6) [ $_n -lt 3 ] && { _n=$((_n + 1)); continue; } ;; esac
		break
	done
	[ $_rc = 0 ] || HG_SG_ERR="sg_persist -n $* exit $_rc: $(printf '%s' "$_e" | head -c 300 | tr '\n' ' ')"
	return $_rc
}
# hg_scsi_keys PATH — the disk's registered keys, one per line; on failure the error instead (for
# HG_ERR: the caller runs this in a command substitution, which keeps no variable).
hg_scsi_keys() {
	_out=$(hg_sg --in --read-keys "$1" || { printf '%s' "$HG_SG_ERR"; exit 1; }) || { printf '%s: read keys: %s' "$1" "$_out"; return 1; }
	printf '%s\n' "$_out" | awk '$1 ~ /^0x/ { print $1 }'
}
# hg_scsi_rekey OP PATH — move our registration through PATH to the next generation (refresh) or to
# the released marker (release). Registered through this path under none of our keys (preempted,
# or never): nothing to do. A released key is never refreshed back to life, nor released again
# (another path of this node may already show the marker: skipped, this path's key is tried).
hg_scsi_rekey() {
	_keys=$(hg_scsi_keys "$2") || { HG_ERR=$_keys; return 1; }
	_tried=
	for _k in $_keys; do
		hg_is_mine "$_k" || continue
		[ "$_k" = "$HG_RELEASED_KEY" ] && continue
		if [ "$1" = refresh ]; then _sark=$(hg_next_key "$_k"); else _sark=$HG_RELEASED_KEY; fi
		# Each path holds its own registration: try each of our listed keys until one is this path's.
		hg_sg --out --register "--param-rk=$_k" "--param-sark=$_sark" "$2" >/dev/null && return 0
		_tried="$_tried $_k ($HG_SG_ERR)"
	done
	[ -z "$_tried" ] && return 0
	HG_ERR="$2: register to $_sark refused for our keys$_tried"
	return 1
}
# hg_scsi_live PATHS — true while the disk still lists a key of ours that is not the marker.
hg_scsi_live() {
	for _p in $1; do
		_keys=$(hg_scsi_keys "$_p") || continue
		for _k in $_keys; do hg_is_mine "$_k" && [ "$_k" != "$HG_RELEASED_KEY" ] && return 0; done
		return 1
	done
	return 0
}
hg_scsi_op() { # OP PATHS (one disk)
	_sok=0 _serr=
	for _p in $2; do hg_scsi_rekey "$1" "$_p" || { _sok=1; _serr="$_serr${_serr:+; }$HG_ERR"; }; done
	# A path that holds none of the keys listed (preempted) answers conflict to each: released all
	# the same once the disk lists no live key of ours.
	[ $_sok = 1 ] && [ "$1" = release ] && ! hg_scsi_live "$2" && _sok=0
	HG_ERR=$_serr
	return $_sok
}

# --- file (fencing/file.ts: pretty-printed JSON, lock file created O_EXCL, renamed into place) ---
hg_file_lock() { # STATE -> 0 with the lock held (owner text in HG_OWNER)
	_lock=$1.lock
	# The pid is the guard's (alive while it runs); the token is unique to this call (subshells share $$).
	HG_OWNER="{\"pid\":$$,\"ns\":\"$HG_NS\",\"host\":\"$HG_HOST\",\"token\":\"$(basename "$(mktemp -u "$HG_DIR/t.XXXXXXXX")")\"}"
	_until=$(($(hg_ms) + 3 * HG_LOCK_STALE_MS))
	while ! (set -C && printf '%s' "$HG_OWNER" >"$_lock") 2>/dev/null; do
		# Broken as the daemons do: when older than the stale bound (its owner is frozen), or when its
		# owner is a dead process of our pid namespace on this host (the daemon that just died, often):
		# the first pid namespace of every host has the same id, so the host's boot id must match too.
		_m=$(stat -c %.3Y "$_lock" 2>/dev/null | tr -d .)
		_o=$(cat "$_lock" 2>/dev/null)
		_pid=$(printf '%s' "$_o" | sed -n 's/.*"pid":\([0-9]*\).*/\1/p')
		_dead=0
		case $_o in *"\"ns\":\"$HG_NS\",\"host\":\"$HG_HOST\""*) [ -n "$_pid" ] && [ -n "$HG_NS" ] && [ -n "$HG_HOST" ] && [ ! -d "/proc/$_pid" ] && _dead=1 ;; esac
		if [ -n "$_m" ] && { [ $_dead = 1 ] || [ $(($(hg_ms) - _m)) -gt "$HG_LOCK_STALE_MS" ]; } && (set -C && : >"$_lock.break") 2>/dev/null; then
			[ "$(stat -c %.3Y "$_lock" 2>/dev/null | tr -d .)" = "$_m" ] && rm -f "$_lock"
			rm -f "$_lock.break"
		fi
		[ "$(hg_ms)" -gt "$_until" ] && return 1
		sleep 0.005
	done
}
hg_file_unlock() { [ "$(cat "$1.lock" 2>/dev/null)" = "$HG_OWNER" ] && rm -f "$1.lock"; }
hg_file_op() { # OP STATE; OP = refresh | release. Rewrites the state file as fencing/file.ts does.
	[ -f "$2" ] || return 0
	hg_file_lock "$2" || { HG_ERR="$2: $1: its lock stayed busy (held by $(cat "$2.lock" 2>/dev/null))"; return 1; }
	_tmp=$(mktemp "$2.guard.XXXXXXXX") || { HG_ERR="$2: $1: mktemp failed"; hg_file_unlock "$2"; return 1; }
	awk -v op="$1" -v me="$HG_INITIATOR" -v part="$HG_NODEPART" '
		function q(s) { return "\"" s "\"" }
		inreg && /^  }/ { inreg = 0; next }
		inreg { k = $1; v = $2; gsub(/[":]/, "", k); gsub(/[",]/, "", v); n++; ini[n] = k; key[k] = v; next }
		/^  "registrations": \{$/ { inreg = 1; next }
		/^  "generation": / { gen = $2; gsub(/,/, "", gen) }
		/^  "holder": / { hq = ($2 != "null,"); h = $2; gsub(/[",]/, "", h) }
		/^  "type": / { t = $2; gsub(/,/, "", t) }
		END {
			if (!(me in key)) exit 3
			if (op == "refresh") {
				g = substr(key[me], length(key[me]) - 7)
				if (g == "ffffffff") exit 3 # released: never refreshed back to life
				v = 0; for (i = 1; i <= 8; i++) v = v * 16 + index("0123456789abcdef", substr(g, i, 1)) - 1
				v = (v + 1) % 4294967296; if (v == 4294967295) v = 0
				key[me] = sprintf("0x%s%08x", part, v)
				gen = (gen + 1) % 4294967296
			} else {
				# Hand over: the reservation stays, under the released marker (fencing/keys.ts).
				key[me] = sprintf("0x%sffffffff", part)
				gen = (gen + 1) % 4294967296
			}
			print "{"; printf "  \"generation\": %.0f,\n", gen
			m = 0; for (i = 1; i <= n; i++) if (ini[i] in key) m++
			if (m == 0) print "  \"registrations\": {},"
			else {
				print "  \"registrations\": {"; c = 0
				for (i = 1; i <= n; i++) if (ini[i] in key) { c++; print "    " q(ini[i]) ": " q(key[ini[i]]) (c < m ? "," : "") }
				print "  },"
			}
			print "  \"holder\": " (hq ? q(h) : "null") ","; print "  \"type\": " t; print "}"
		}' "$2" >"$_tmp"
	_rc=$?
	# Publish only while the lock is still ours (a daemon may have broken it as stale).
	if [ $_rc = 0 ] && [ "$(cat "$2.lock" 2>/dev/null)" = "$HG_OWNER" ] && mv -f "$_tmp" "$2"; then :; else
		rm -f "$_tmp"
		case $_rc in
		0) _rc=1 HG_ERR="$2: $1: not published (its lock was broken as stale, or mv failed)" ;;
		3) ;;
		*) HG_ERR="$2: $1: awk exit $_rc rewriting it" ;;
		esac
	fi
	hg_file_unlock "$2"
	[ $_rc = 0 ] || [ $_rc = 3 ] # 3: not registered (preempted or released): nothing to do
}

hg_disk_op() { # OP DISK
	case $HG_BACKEND in
	scsi) hg_scsi_op "$1" "$2" ;;
	file) hg_file_op "$1" "$2" ;;
	esac
}

# hg_refresh_now INDEX — one refresh of a held hierarchy's disks, unless it is released already.
# A failed refresh is logged once per hierarchy (the key may freeze: peers then preempt).
# Marker files are made with `true >`, never `: >`: a failed redirection on a special builtin
# ends dash, and a full or broken HG_DIR must not end the stops.
hg_refresh_now() {
	hg_released "$1" && return 0
	while IFS= read -r _d; do
		hg_disk_op refresh "$_d" && continue
		[ -e "$HG_DIR/refresh-failed.$1" ] && continue
		true >"$HG_DIR/refresh-failed.$1"
		hg_log "hierarchy $1: a key refresh failed (logged once): $HG_ERR"
	done <"$HG_DIR/hold.$1"
}
# hg_refresh INDEX — the refresher's: skipped while the hierarchy's lock is busy (it is being
# released, or its refreshing stopped) and after the deadline.
hg_refresh() {
	hg_trylock "$1"
	case $? in 1) return 0 ;; 2) hg_refresh_now "$1"; return ;; esac
	[ "$(hg_ms)" -lt "$HG_DEADLINE" ] && hg_refresh_now "$1"
	hg_unlock "$1"
}

# Background: refresh every held, unreleased hierarchy's disks until the deadline, or until the
# guard (HG_MAIN) is gone.
# Passes start every REFRESH_S, however long one took (a pass is ~30 short processes, 100-150 ms
# on a loaded machine even at the daemon's priority): a fixed sleep after each made the key move
# every ~0.5 s against a 0.7 s liveness window.
hg_refresher() {
	_every=$(printf '%s' "$HG_REFRESH" | awk '{ printf "%d", $1 * 1000 }')
	while _ps=$(hg_ms) && [ "$_ps" -lt "$HG_DEADLINE" ] && kill -0 "$HG_MAIN" 2>/dev/null; do
		for _i in $HG_IDX; do hg_refresh "$_i"; done
		_w=$((_every - ($(hg_ms) - _ps)))
		# Never longer than one period (the clock stepped back): a stalled refresh is a preemption.
		[ "$_w" -gt "$_every" ] && _w=$_every
		[ "$_w" -gt 0 ] && sleep "$((_w / 1000)).$(printf '%03d' $((_w % 1000)))"
	done
}
hg_begin() {
	[ "$HG_HOLDS" -gt 0 ] || return 0
	for _i in $HG_IDX; do hg_refresh_now "$_i"; done # nothing else runs yet
	# The bound runs from here: the first hold's own time is not taken from the stops.
	HG_DEADLINE=$(($(hg_ms) + HG_BOUND * 1000))
	hg_refresher &
	HG_REFRESHER=$!
	hg_log "holding the disks of $HG_HOLDS hierarchies ($(($(hg_ms) - HG_T0)) ms)"
}

# hg_stop INDEX LABEL TIMEOUT_S AGENT [VAR=value…] — one agent stop; a failure marks INDEX failed.
hg_stop() {
	_i=$1 _label=$2 _secs=$3 _agent=$4; shift 4
	_s=$(hg_ms)
	_nice=
	[ "$HG_AGENT_NICE" -gt 0 ] 2>/dev/null && _nice="nice -n $HG_AGENT_NICE"
	if timeout -s KILL "$_secs" $_nice env -i "$@" "$_agent" stop </dev/null >/dev/null 2>&1; then
		hg_log "stop $_label ok ($(($(hg_ms) - _s)) ms)"
	else
		hg_log "stop $_label FAILED ($(($(hg_ms) - _s)) ms)"
		true >"$HG_DIR/failed.$_i"
	fi
}

# hg_release INDEX NAME — every stop of NAME is done: give its disks up, unless one failed.
hg_release() {
	[ -f "$HG_DIR/hold.$1" ] || return 0
	if [ -e "$HG_DIR/failed.$1" ]; then
		hg_stop_refreshing "$1"
		hg_log "$2: a stop failed: keeping its disks (peers preempt once the key freezes)"
		return 0
	fi
	hg_lock "$1"
	true >"$HG_DIR/released.$1"
	_ok=1 _rerr=
	while IFS= read -r _d; do hg_disk_op release "$_d" || { _ok=0; _rerr="$_rerr${_rerr:+; }$HG_ERR"; }; done <"$HG_DIR/hold.$1"
	hg_unlock "$1"
	if [ $_ok = 1 ]; then hg_log "$2: stopped and released ($(($(hg_ms) - HG_T0)) ms after the daemon died)"; else hg_log "$2: stopped, release FAILED (peers preempt once the key freezes): $_rerr"; fi
}

# hg_stop_refreshing INDEX — the key of INDEX freezes: no refresh starts after this returns.
hg_stop_refreshing() {
	hg_lock "$1"
	true >"$HG_DIR/released.$1"
	hg_unlock "$1"
}

# hg_keep INDEX NAME: a start of NAME was in flight when the daemon died. An orphaned agent may
# still bring something up after our stops, so its disks are never released here: the refresh
# ends, the key freezes, and peers preempt as they would a dead node (scsi: that fences it).
hg_keep() {
	[ -f "$HG_DIR/hold.$1" ] || return 0
	hg_stop_refreshing "$1"
	hg_log "$2: a start was in flight: keeping its disks (peers preempt once the key freezes)"
}

hg_end() {
	[ -n "$HG_REFRESHER" ] && kill "$HG_REFRESHER" 2>/dev/null
	wait 2>/dev/null
	rm -rf "$HG_DIR"
	hg_log "done in $(($(hg_ms) - HG_T0)) ms"
}
