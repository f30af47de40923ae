// Picks the ownership backend named by the cluster config. The SCSI backend is loaded only when
// configured, so a file-backend demo never needs sg3_utils.
import type { Logger } from 'pino';
import type { OwnershipConfig } from '../hierarchies/model.ts';
import type { OwnershipBackend } from './backend.ts';
import { FileBackend } from './file.ts';

type ScsiBackendClass = new (opts: { log?: Logger }) => OwnershipBackend;

export async function createBackend(cfg: OwnershipConfig, self: string, opts: { log?: Logger; fileLockStaleMs?: number } = {}): Promise<OwnershipBackend> {
  switch (cfg.backend) {
    case 'file':
      return new FileBackend({ dir: cfg.dir, initiator: self, ...(opts.fileLockStaleMs ? { lockStaleMs: opts.fileLockStaleMs } : {}) });
    case 'scsi': {
      // A non-literal specifier keeps this file independent of scsi.ts at type-check time.
      const spec = './scsi.ts';
      const mod = (await import(spec)) as { ScsiBackend?: unknown };
      if (typeof mod.ScsiBackend !== 'function') throw new Error('fencing/scsi.ts does not export class ScsiBackend');
      const Ctor = mod.ScsiBackend as ScsiBackendClass;
      return new Ctor(opts.log ? { log: opts.log } : {});
    }
    default: {
      const other: never = cfg;
      throw new Error(`unknown ownership backend ${JSON.stringify((other as { backend?: unknown }).backend)}`);
    }
  }
}

export { FileBackend } from './file.ts';
export { OwnershipKeeper } from './ownership.ts';
export type { Ownership } from './ownership.ts';
export { acquire, watchHolder } from './race.ts';
export type { AcquireOptions, AcquireOutcome, HolderWatch } from './race.ts';
export * from './keys.ts';
