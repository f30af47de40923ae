// Live reload of the cluster file and the hierarchy files (chokidar). Edits are validated exactly like at start-up; a
// configuration with any error is rejected as a whole and the daemon keeps its last good one —
// a typo must never take a running cluster down. Debounced, so an editor's save-rename-write
// sequence is one reload.
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from './log.ts';

export function watchHierarchies(dir: string | string[], log: Logger, onChange: () => void, debounceMs = 300): FSWatcher {
  let timer: NodeJS.Timeout | undefined;
  const w = watch(dir, { ignoreInitial: true, depth: 0, awaitWriteFinish: { stabilityThreshold: 100, pollInterval: 50 } });
  w.on('all', (event, path) => {
    if (!/\.ya?ml$/.test(path)) return;
    log.info({ event: 'config-changed', change: event, file: path }, `configuration changed: ${event} ${path}`);
    if (timer) clearTimeout(timer);
    timer = setTimeout(onChange, debounceMs);
  });
  w.on('error', (e) => log.error({ event: 'watch-error', err: String(e) }, `cannot watch ${dir}: ${String(e)}`));
  return w;
}
