// Teardown that happens whatever way the process ends: normal exit, an exception, Ctrl-C,
// SIGTERM from a CI timeout. Namespaces, veths, loop devices and node processes outlive us
// otherwise. Every registered function is synchronous, because a process 'exit' handler
// cannot wait for anything.

type Cleanup = () => void;

const pending = new Map<number, { what: string; fn: Cleanup }>();
let nextId = 1;
let installed = false;

function runAll(): void {
  // Last registered first: later resources usually depend on earlier ones.
  for (const id of [...pending.keys()].reverse()) {
    const entry = pending.get(id);
    pending.delete(id);
    if (!entry) continue;
    try {
      entry.fn();
    } catch (e) {
      console.error(`cleanup of ${entry.what} failed: ${(e as Error).message}`);
    }
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  process.on('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      console.error(`\n${sig}: tearing the test bed down`);
      runAll();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Register a synchronous cleanup; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(what: string, fn: Cleanup): () => void {
  install();
  const id = nextId++;
  pending.set(id, { what, fn });
  return () => {
    const entry = pending.get(id);
    if (!entry) return;
    pending.delete(id);
    entry.fn();
  };
}
