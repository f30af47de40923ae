// Cluster-wide admin state: what admins asked for (stop, move, maintenance, clear, standby),
// replicated to every node in the heartbeat and kept in every node's stateDir.
//
// A last-writer-wins map. Each entry carries a Lamport version and the node that wrote it; two
// maps merge key by key, keeping the entry with the higher (version, node). Merging is
// commutative, associative and idempotent, so after a partition heals every node ends with the
// same map whatever order the heartbeats came in, and the newest request wins. Removing a setting
// writes a tombstone (value null) that wins over the older value the same way.
//
// Pure: no clock (`at` is the wall time the executor stamped on the request, shown in status only).
import type { NodeName } from '../../hierarchies/model.ts';

export type HierarchySetting = 'stop' | 'maintenance' | 'move' | 'clear';
export type NodeSetting = 'standby' | 'maintenance';

export interface AdminEntry {
  /** Lamport version: one more than any version the writer had seen. */
  v: number;
  /** The node that wrote it (tie-break between equal versions). */
  node: NodeName;
  /** Who asked (user@node), for status. */
  by: string;
  /** Wall-clock ms when it was asked, for status. */
  at: number;
  /** true = on; a node name for `move`; null = removed. */
  value: true | string | null;
}

/** Key `h/<hierarchy>/<setting>` or `n/<node>/<setting>`. */
export type AdminDoc = Record<string, AdminEntry>;

export const HIERARCHY_SETTINGS: readonly HierarchySetting[] = ['stop', 'maintenance', 'move', 'clear'];
export const NODE_SETTINGS: readonly NodeSetting[] = ['standby', 'maintenance'];

export function hierarchyKey(h: string, s: HierarchySetting): string {
  return `h/${h}/${s}`;
}
export function nodeKeyOf(n: NodeName, s: NodeSetting): string {
  return `n/${n}/${s}`;
}

function newer(a: AdminEntry, b: AdminEntry | undefined): boolean {
  return b === undefined || a.v > b.v || (a.v === b.v && a.node > b.node);
}

/** b merged into a: the merged map and the keys that changed (empty: a already had it all). */
export function mergeAdmin(a: AdminDoc, b: AdminDoc): { doc: AdminDoc; changed: string[] } {
  const changed: string[] = [];
  let doc = a;
  for (const [k, e] of Object.entries(b)) {
    if (!newer(e, Object.hasOwn(a, k) ? a[k] : undefined)) continue;
    if (doc === a) doc = { ...a };
    Object.defineProperty(doc, k, { value: e, enumerable: true, writable: true, configurable: true });
    changed.push(k);
  }
  return { doc, changed };
}

export function maxVersion(doc: AdminDoc): number {
  let m = 0;
  for (const e of Object.values(doc)) if (e.v > m) m = e.v;
  return m;
}

/** Write one setting: a new entry with a version above every version in the map. */
export function writeAdmin(doc: AdminDoc, key: string, value: AdminEntry['value'], who: { node: NodeName; by: string; at: number }): AdminDoc {
  return mergeAdmin(doc, { [key]: { v: maxVersion(doc) + 1, node: who.node, by: who.by, at: who.at, value } }).doc;
}

export function entryOf(doc: AdminDoc, key: string): AdminEntry | undefined {
  return Object.hasOwn(doc, key) ? doc[key] : undefined;
}

// The settings a map holds for any hierarchy or node ("h/move", "n/maintenance"), per map: the
// reducer asks about every hierarchy it decides, and most maps set nothing for most of them (a
// 1000-hierarchy step built and looked up six keys per hierarchy). Maps are never changed in
// place (mergeAdmin copies), so the answer holds for the map's life.
const settingsOf = new WeakMap<AdminDoc, Set<string>>();

/** Does any entry of the map set `setting` (not removed) for some hierarchy ('h') or node ('n')? */
export function setAnywhere(doc: AdminDoc, kind: 'h' | 'n', setting: HierarchySetting | NodeSetting): boolean {
  let set = settingsOf.get(doc);
  if (set === undefined) {
    set = new Set();
    for (const k in doc) if (doc[k]!.value !== null) set.add(`${k[0]}/${k.slice(k.lastIndexOf('/') + 1)}`);
    settingsOf.set(doc, set);
  }
  return set.has(`${kind}/${setting}`);
}

function on(doc: AdminDoc, key: string): boolean {
  return entryOf(doc, key)?.value === true;
}

/** Held out of service cluster-wide (`hierarchy <h> stop`). */
export function isStopped(doc: AdminDoc, h: string): boolean {
  return setAnywhere(doc, 'h', 'stop') && on(doc, hierarchyKey(h, 'stop'));
}
export function hierarchyInMaintenance(doc: AdminDoc, h: string): boolean {
  return setAnywhere(doc, 'h', 'maintenance') && on(doc, hierarchyKey(h, 'maintenance'));
}
export function isStandby(doc: AdminDoc, n: NodeName): boolean {
  return setAnywhere(doc, 'n', 'standby') && on(doc, nodeKeyOf(n, 'standby'));
}
export function nodeInMaintenance(doc: AdminDoc, n: NodeName): boolean {
  return setAnywhere(doc, 'n', 'maintenance') && on(doc, nodeKeyOf(n, 'maintenance'));
}
/** H is unmanaged on node n: its own maintenance, or n's. */
export function unmanaged(doc: AdminDoc, h: string, n: NodeName): boolean {
  return hierarchyInMaintenance(doc, h) || nodeInMaintenance(doc, n);
}
/** The node an admin moved H to, or null. */
export function moveTarget(doc: AdminDoc, h: string): NodeName | null {
  if (!setAnywhere(doc, 'h', 'move')) return null;
  const v = entryOf(doc, hierarchyKey(h, 'move'))?.value;
  return typeof v === 'string' ? v : null;
}
/** Version of the last `clear` of H (0: never). */
export function clearVersion(doc: AdminDoc, h: string): number {
  if (!setAnywhere(doc, 'h', 'clear')) return 0;
  const e = entryOf(doc, hierarchyKey(h, 'clear'));
  return e && e.value !== null ? e.v : 0;
}

// --- checking a map that came from a peer or from disk -------------------------------------------

const KEY = /^(h|n)\/(.{1,255})\/([a-z]+)$/s;
const MAX_BY = 128;

/**
 * Why `v` is not an admin map (naming the key and field), or null. Bounded: at most `maxEntries`
 * entries, names of at most 255 characters, `by` of at most 128.
 */
export function checkAdminDoc(v: unknown, maxEntries: number): string | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'not an object';
  const entries = Object.entries(v);
  if (entries.length > maxEntries) return `${entries.length} entries, more than the ${maxEntries} allowed`;
  for (const [k, e] of entries) {
    const m = KEY.exec(k);
    if (!m) return `key ${JSON.stringify(k.slice(0, 80))}: not h/<hierarchy>/<setting> or n/<node>/<setting>`;
    const settings: readonly string[] = m[1] === 'h' ? HIERARCHY_SETTINGS : NODE_SETTINGS;
    if (!settings.includes(m[3]!)) return `key ${JSON.stringify(k.slice(0, 80))}: unknown setting ${JSON.stringify(m[3])}`;
    if (typeof e !== 'object' || e === null || Array.isArray(e)) return `${k}: not an object`;
    const x = e as Record<string, unknown>;
    for (const f of Object.keys(x)) if (!['v', 'node', 'by', 'at', 'value'].includes(f)) return `${k}: unknown field ${JSON.stringify(f)}`;
    if (!Number.isSafeInteger(x.v) || (x.v as number) < 1) return `${k}.v: not a positive integer`;
    if (typeof x.node !== 'string' || x.node.length < 1 || x.node.length > 255) return `${k}.node: not a node name`;
    if (typeof x.by !== 'string' || x.by.length > MAX_BY) return `${k}.by: not a string of at most ${MAX_BY} characters`;
    if (!Number.isSafeInteger(x.at) || (x.at as number) < 0) return `${k}.at: not a time`;
    const value = x.value;
    const moveKey = m[1] === 'h' && m[3] === 'move';
    const ok = value === null || (moveKey ? typeof value === 'string' && value.length >= 1 && value.length <= 255 : value === true);
    if (!ok) return `${k}.value: ${moveKey ? 'a node name or null' : 'true or null'} expected`;
  }
  return null;
}

/** A checked map as an own-property copy (a key "__proto__" stays a key). */
export function copyAdminDoc(v: AdminDoc): AdminDoc {
  const out: AdminDoc = {};
  for (const [k, e] of Object.entries(v)) Object.defineProperty(out, k, { value: { v: e.v, node: e.node, by: e.by, at: e.at, value: e.value }, enumerable: true, writable: true, configurable: true });
  return out;
}
