// One child-process spawn per event-loop turn, for every spawn the daemon makes often (agents,
// sg_persist).
//
// Why: spawning is synchronous in Node (fork + exec in the calling thread, plus execa's own setup:
// ~3 ms each here). A takeover of 20 hierarchies launched 20 agent starts in one go and blocked
// the loop for 60-80 ms, longer on a loaded machine — heartbeats and key refreshes waited behind
// the burst, and with the tuned 300 ms dead time a peer then found this node silent and its keys
// frozen, and took the hierarchies it had just started. Taking turns lets the timers run between
// two spawns (the longest gap measured went from 65-78 ms to under 9 ms) at no cost in total time.
import { setImmediate as nextTurn } from 'node:timers/promises';

let last: Promise<void> = Promise.resolve();

/** Resolves when the caller may spawn: after every earlier caller, one event-loop turn apart. */
export function spawnTurn(): Promise<void> {
  const turn = last.then(() => nextTurn());
  last = turn;
  return turn;
}
