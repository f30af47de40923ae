// Pure parsers for what sg3_utils prints, written against the exact outputs recorded on LIO
// (sg3_utils 1.46: sg_persist 0.67) — see test/unit/sg-parse.test.ts for the recordings.
//
// The rule: anything we do not recognise line by line is `garbled`, with the raw text attached.
// A parser that skips what it does not understand would one day read "no keys" out of an error
// message and let two nodes write to one disk.
import type { KeyList, OwnershipErrorCode, ReservationState } from './backend.ts';
import { OwnershipError } from './backend.ts';

/** Where the text came from, for error messages: the disk id and the device path. */
export interface Source {
  disk: string;
  path?: string;
}

/** SCSI persistent reservation types as sg_persist names them (SPC-4 table, index = type code). */
export const RESERVATION_TYPE_NAMES: readonly string[] = [
  'obsolete [0]',
  'Write Exclusive',
  'obsolete [2]',
  'Exclusive Access',
  'obsolete [4]',
  'Write Exclusive, registrants only',
  'Exclusive Access, registrants only',
  'Write Exclusive, all registrants',
  'Exclusive Access, all registrants',
  'obsolete [9]',
  'obsolete [0xa]',
  'obsolete [0xb]',
  'obsolete [0xc]',
  'obsolete [0xd]',
  'obsolete [0xe]',
  'obsolete [0xf]',
];

function garbled(src: Source, what: string, raw: string): OwnershipError {
  const opts: { path?: string; raw: string } = { raw };
  if (src.path !== undefined) opts.path = src.path;
  return new OwnershipError('garbled', src.disk, `unexpected output of ${what}`, opts);
}

/** Non-empty lines without trailing whitespace (LIO's INQUIRY strings end in spaces). */
function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.replace(/\s+$/, ''))
    .filter((l) => l !== '');
}

const GENERATION = String.raw`PR generation=0x([0-9a-fA-F]{1,8})`;
const KEY = /^0x[0-9a-fA-F]{1,16}$/;

function parseGeneration(hex: string): number {
  return Number.parseInt(hex, 16);
}

/** `sg_persist -n -i -k DEV` (READ KEYS). */
export function parseReadKeys(stdout: string, src: Source): KeyList {
  const what = 'sg_persist --read-keys';
  const ls = lines(stdout);
  const head = ls[0]?.trim() ?? '';
  const none = new RegExp(`^${GENERATION}, there are NO registered reservation keys$`).exec(head);
  if (none?.[1] !== undefined) {
    if (ls.length !== 1) throw garbled(src, what, stdout);
    return { generation: parseGeneration(none[1]), keys: [] };
  }
  const some = new RegExp(`^${GENERATION}, (\\d+) registered reservation keys? follows?:$`).exec(head);
  if (some?.[1] === undefined || some[2] === undefined) throw garbled(src, what, stdout);
  const count = Number(some[2]);
  const keyLines = ls.slice(1).map((l) => l.trim());
  // The count printed in the header must match the lines that follow: a truncated list is not
  // a shorter list of keys.
  if (keyLines.length !== count || count === 0 || !keyLines.every((k) => KEY.test(k))) throw garbled(src, what, stdout);
  return { generation: parseGeneration(some[1]), keys: keyLines.map((k) => BigInt(k)) };
}

/** `sg_persist -n -i -r DEV` (READ RESERVATION). */
export function parseReadReservation(stdout: string, src: Source): ReservationState {
  const what = 'sg_persist --read-reservation';
  const ls = lines(stdout).map((l) => l.trim());
  const head = ls[0] ?? '';
  const none = new RegExp(`^${GENERATION}, there is NO reservation held$`).exec(head);
  if (none?.[1] !== undefined) {
    if (ls.length !== 1) throw garbled(src, what, stdout);
    return { generation: parseGeneration(none[1]), holder: null, type: null };
  }
  const held = new RegExp(`^${GENERATION}, Reservation follows:$`).exec(head);
  const key = /^Key=(0x[0-9a-fA-F]{1,16})$/.exec(ls[1] ?? '');
  // sg_persist separates scope and type with a comma and two spaces.
  const scope = /^scope: [^,]+,\s+type: (.+)$/.exec(ls[2] ?? '');
  if (held?.[1] === undefined || key?.[1] === undefined || scope?.[1] === undefined || ls.length !== 3) {
    throw garbled(src, what, stdout);
  }
  const type = RESERVATION_TYPE_NAMES.indexOf(scope[1]);
  if (type < 0) throw garbled(src, what, stdout);
  return { generation: parseGeneration(held[1]), holder: BigInt(key[1]), type };
}

/**
 * Canonical form of a LUN identity: "naa." + lowercase hex, as the kernel shows it in
 * /sys/block/sdX/device/wwid. Accepts what admins copy from elsewhere: "naa.6001405…",
 * "0x6001405…", "wwn-0x6001405…" (/dev/disk/by-id), the udev SCSI serial "36001405…" (NAA
 * designators get the prefix 3) and plain hex. Null when it is not an NAA designator (8 or 16
 * bytes, first hex digit 2, 3, 5 or 6 = the NAA formats SPC defines).
 */
export function normalizeWwn(text: string): string | null {
  let t = text.trim().toLowerCase();
  for (const prefix of ['naa.', 'wwn-0x', '0x']) {
    if (t.startsWith(prefix)) {
      t = t.slice(prefix.length);
      break;
    }
  }
  if (/^3[0-9a-f]{16}$|^3[0-9a-f]{32}$/.test(t) && /^[2356]$/.test(t[1] ?? '')) t = t.slice(1);
  if (!/^[0-9a-f]{16}$|^[0-9a-f]{32}$/.test(t)) return null;
  if (!/^[2356]$/.test(t[0] ?? '')) return null;
  return `naa.${t}`;
}

/**
 * The LUN identity from the Device Identification VPD page (0x83): the first NAA designator
 * associated with the addressed logical unit, canonical (see normalizeWwn). Null when the page
 * has no NAA designator for the LU. Understands `sg_vpd -p di` and `sg_inq -p 0x83`.
 * Designators of the target port or target device are ignored: they differ per path (port) or
 * are shared by every LUN of the target (device), so they cannot tell two LUNs apart.
 */
export function parseLunIdentity(stdout: string, src: Source): string | null {
  const ls = lines(stdout);
  const first = ls[0]?.trim() ?? '';
  if (first === 'Device Identification VPD page:') return fromSgVpd(ls.slice(1), stdout, src);
  if (first === 'VPD INQUIRY: Device Identification page') return fromSgInq(ls.slice(1), stdout, src);
  throw garbled(src, 'the Device Identification VPD page (0x83)', stdout);
}

// sg_vpd -p di: sections "  Addressed logical unit:", "  Target port:", ...; inside, each
// designator is "    designator type: NAA,  code set: Binary" followed by "      0x<hex>".
function fromSgVpd(ls: string[], raw: string, src: Source): string | null {
  let section = '';
  for (let i = 0; i < ls.length; i++) {
    const line = ls[i] ?? '';
    const header = /^ {2}(\S.*):$/.exec(line);
    if (header?.[1] !== undefined) {
      section = header[1];
      continue;
    }
    if (section !== 'Addressed logical unit') continue;
    if (/^\s+designator type: NAA,/.test(line)) {
      const value = (ls[i + 1] ?? '').trim();
      const wwn = /^0x[0-9a-fA-F]+$/.test(value) ? normalizeWwn(value) : null;
      if (wwn === null) throw garbled(src, 'sg_vpd -p di (NAA designator)', raw);
      return wwn;
    }
  }
  if (section === '') throw garbled(src, 'sg_vpd -p di', raw);
  return null;
}

// sg_inq -p 0x83: "  Designation descriptor number N, ..." blocks, each with
// "    designator_type: NAA, ...", "    associated with the Addressed logical unit" and the
// whole designator as "      [0x<hex>]".
function fromSgInq(ls: string[], raw: string, src: Source): string | null {
  const blocks: string[][] = [];
  for (const line of ls) {
    if (/^ {2}Designation descriptor number \d+/.test(line)) blocks.push([]);
    else blocks.at(-1)?.push(line.trim());
  }
  if (blocks.length === 0) throw garbled(src, 'sg_inq -p 0x83', raw);
  for (const b of blocks) {
    if (!b.some((l) => l.startsWith('designator_type: NAA,'))) continue;
    if (!b.includes('associated with the Addressed logical unit')) continue;
    const value = b.map((l) => /^\[(0x[0-9a-fA-F]+)\]$/.exec(l)?.[1]).find((v) => v !== undefined);
    const wwn = value !== undefined ? normalizeWwn(value) : null;
    if (wwn === null) throw garbled(src, 'sg_inq -p 0x83 (NAA designator)', raw);
    return wwn;
  }
  return null;
}

// sg3_utils exit statuses (sg_lib.h) that mean something to us.
const EXIT_NOT_READY = 2;
const EXIT_ILLEGAL_REQUEST = 5;
const EXIT_UNIT_ATTENTION = 6;
const EXIT_INVALID_OPCODE = 9;
const EXIT_RESERVATION_CONFLICT = 24;
/** 50 + errno: the OS refused (open, or the SG_IO pass-through ioctl). Up to 96. */
const EXIT_OS_BASE = 50;
const EXIT_OS_LAST = 96;
const ENOENT = 2;
const EINVAL = 22;
const ENOTTY = 25;

/**
 * What an sg3_utils exit status means, or null for success. `stderr` separates the two kinds of
 * OS errors: "error opening file" is `open-failed`; a pass-through that the device refuses with
 * ENOTTY/EINVAL (a loop device, /dev/null: not SCSI at all) is `unsupported`, other pass-through
 * errors are `io`.
 */
export function classifyExit(exitCode: number, stderr: string): OwnershipErrorCode | null {
  switch (exitCode) {
    case 0:
      return null;
    case EXIT_RESERVATION_CONFLICT:
      return 'conflict';
    case EXIT_UNIT_ATTENTION:
      return 'unit-attention';
    case EXIT_NOT_READY:
      return 'not-ready';
    case EXIT_ILLEGAL_REQUEST: // e.g. a reservation type the device does not support
    case EXIT_INVALID_OPCODE: // PERSISTENT RESERVE IN/OUT not implemented (scsi_debug)
      return 'unsupported';
  }
  if (exitCode >= EXIT_OS_BASE && exitCode <= EXIT_OS_LAST) {
    const errno = exitCode - EXIT_OS_BASE;
    if (/error opening file/i.test(stderr) || (errno === ENOENT && !/pass-through/i.test(stderr))) return 'open-failed';
    if (/pass-through/i.test(stderr)) return errno === ENOTTY || errno === EINVAL ? 'unsupported' : 'io';
    return 'open-failed';
  }
  return 'io';
}

/** The last non-empty stderr line (sg3_utils ends with "<tool> failed: <reason>"), for messages. */
export function lastLine(text: string): string {
  return lines(text).at(-1)?.trim() ?? '';
}
