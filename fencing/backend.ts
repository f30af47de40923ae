// The ownership interface, shaped after SCSI-3 persistent reservations (SPC-3 PR OUT / PR IN),
// so that the race logic in fencing/race.ts is the same for every backend. A backend only
// executes primitives; it never decides anything.
//
// Semantics every backend must reproduce (as LIO does, see README "Ownership"):
//  - a registration belongs to an initiator (one per node per path); keys are 64-bit, never 0;
//  - REGISTER (rk=old, sark=new) fails with `conflict` when `old` is not this initiator's key
//    (this is how a preempted holder finds out without ever re-registering by accident);
//  - REGISTER AND IGNORE EXISTING KEY always succeeds (sark=0 unregisters);
//  - RESERVE by a registrant succeeds when nobody holds, or when it already holds; else `conflict`;
//  - PREEMPT AND ABORT (rk=mine, sark=victim) removes every registration with the victim's key
//    and, when the victim held the reservation, hands it to the caller; `conflict` when the
//    caller is not registered;
//  - a holder that unregisters releases the reservation; RELEASE by a non-holder is a no-op;
//  - changing the holder's key (REGISTER rk=old sark=new) keeps the reservation.

export type Key = bigint;

/** One own-able disk of a hierarchy: a single LUN, possibly reached through several paths. */
export interface DiskRef {
  /** Stable id for messages and the file backend: `<hierarchy>/<resource>`. */
  id: string;
  /** Block devices (or by-id / WWN links) that all reach this one LUN. Empty for the file backend. */
  paths: string[];
  /** Expected LUN identity (VPD 0x83 designator), checked when given. */
  wwn?: string;
}

export interface KeyList {
  /** PR generation (bumped by REGISTER and PREEMPT). */
  generation: number;
  keys: Key[];
}

export interface ReservationState {
  generation: number;
  /** Key of the reservation holder, or null when nobody holds it. */
  holder: Key | null;
  /** SCSI reservation type (1 = Write Exclusive), null when none. */
  type: number | null;
}

export type OwnershipErrorCode =
  | 'conflict' // reservation conflict (sg_persist 24)
  | 'unit-attention' // retry after clearing (sg_persist 6)
  | 'not-ready' // sg_persist 2 (LIO also answers an unregistered RESERVE this way)
  | 'open-failed' // device cannot be opened (sg_persist 50 + errno)
  | 'unsupported' // device is not SCSI-PR capable
  | 'identity' // the LUN identity does not match the configured WWN / paths disagree
  | 'garbled' // output we could not parse: raw text is attached
  | 'io'; // anything else

export class OwnershipError extends Error {
  readonly code: OwnershipErrorCode;
  readonly disk: string;
  readonly path: string | undefined;
  readonly raw: string | undefined;
  constructor(code: OwnershipErrorCode, disk: string, message: string, opts: { path?: string; raw?: string } = {}) {
    super(`${disk}${opts.path ? ` (${opts.path})` : ''}: ${message}`);
    this.name = 'OwnershipError';
    this.code = code;
    this.disk = disk;
    this.path = opts.path;
    this.raw = opts.raw;
  }
}

export interface OwnershipBackend {
  /** 'file' or 'scsi'. */
  readonly name: string;
  /** True only when a lost reservation really blocks the loser's writes (I/O fencing). */
  readonly ioFencing: boolean;
  /** Check that the disk exists, supports PR and (when given) has the expected identity. */
  verify(disk: DiskRef): Promise<void>;
  /** REGISTER AND IGNORE EXISTING KEY on every path (sark = key; 0n unregisters). */
  registerIgnore(disk: DiskRef, key: Key): Promise<void>;
  /** REGISTER rk=oldKey sark=newKey on every path; `conflict` when oldKey is not ours any more. */
  reregister(disk: DiskRef, oldKey: Key, newKey: Key): Promise<void>;
  /** RESERVE (type 1, Write Exclusive) with our key. */
  reserve(disk: DiskRef, key: Key): Promise<void>;
  /** PREEMPT AND ABORT: take the reservation from `victim` (and remove all its registrations). */
  preemptAbort(disk: DiskRef, key: Key, victim: Key): Promise<void>;
  readKeys(disk: DiskRef): Promise<KeyList>;
  readReservation(disk: DiskRef): Promise<ReservationState>;
  /** RELEASE the reservation (when held) and unregister on every path. */
  release(disk: DiskRef, key: Key): Promise<void>;
  /** The disk as the guard's shell functions name it (harness/guard-lib.sh): a state file, or the paths. */
  guardDisk(disk: DiskRef): string;
}
