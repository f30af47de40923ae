// Dropping our registration on a disk without ever leaving it unreserved: when we still hold the
// reservation (an earlier life of this node, a hierarchy given up), our key becomes the released
// marker (keys.ts RELEASED_GENERATION) and the reservation stays for the next master to preempt
// at once; otherwise our registration, if any, goes (REGISTER key 0: a non-holder's registration
// grants nothing, and removing it changes nothing for anyone).
import type { DiskRef, OwnershipBackend } from './backend.ts';
import { nodePart, releasedKey } from './keys.ts';

export async function dropOrHandOver(backend: OwnershipBackend, disk: DiskRef, ourNodePart: number): Promise<void> {
  const r = await backend.readReservation(disk);
  if (r.holder !== null && nodePart(r.holder) === ourNodePart) await backend.registerIgnore(disk, releasedKey(r.holder));
  else await backend.registerIgnore(disk, 0n);
}

/** Every disk of a hierarchy; each failure is reported and the walk goes on. The errors, or undefined. */
export async function dropOrHandOverAll(backend: OwnershipBackend, disks: DiskRef[], ourNodePart: number, onError?: (disk: DiskRef, err: string) => void): Promise<string | undefined> {
  const errors: string[] = [];
  for (const d of disks) {
    await dropOrHandOver(backend, d, ourNodePart).catch((e: unknown) => {
      errors.push((e as Error).message);
      onError?.(d, (e as Error).message);
    });
  }
  return errors.length ? errors.join('; ') : undefined;
}
