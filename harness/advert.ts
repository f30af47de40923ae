// This node's own advert as format-2 heartbeats summarize it (packet.ts): the advert (its
// hierarchies and its node meta: admin map, configuration fingerprint), its version (per
// incarnation: +1 on every change) and its digest. Pure; Comm and the simulator's node keep one
// each, so both send the same summaries.
//
// The version moves when the digest does, and the digest is of the advert's whole canonical wire
// form: whatever a node advertises rides along without a change here.

import { advertDigest, type HierarchyAdvert, type NodeMeta } from './packet.ts';

export class OwnAdvert {
  hierarchies: Readonly<Record<string, HierarchyAdvert>> = {};
  meta: NodeMeta | undefined;
  version = 0;
  digest = advertDigest({});
  leaving = false;

  /** Take the hierarchies (and the leaving flag); true when either changed: news, send it at once. */
  set(hierarchies: Readonly<Record<string, HierarchyAdvert>>, leaving: boolean): boolean {
    const moved = this.take(hierarchies, this.meta);
    const changed = moved || leaving !== this.leaving;
    this.leaving = leaving;
    return changed;
  }

  /** Take the node meta; true when it changed. */
  setMeta(meta: NodeMeta): boolean {
    return this.take(this.hierarchies, meta);
  }

  private take(hierarchies: Readonly<Record<string, HierarchyAdvert>>, meta: NodeMeta | undefined): boolean {
    const digest = advertDigest(hierarchies as Record<string, HierarchyAdvert>, meta);
    this.hierarchies = hierarchies;
    this.meta = meta;
    if (digest === this.digest) return false;
    this.version++;
    this.digest = digest;
    return true;
  }

  /** The summary fields of a format-2 heartbeat; with the advert itself when `carry`. */
  summary(carry: boolean): { advertVersion: number; advertDigest: string; hierarchies?: Record<string, HierarchyAdvert>; meta?: NodeMeta } {
    const s = { advertVersion: this.version, advertDigest: this.digest };
    if (!carry) return s;
    return { ...s, hierarchies: this.hierarchies as Record<string, HierarchyAdvert>, ...(this.meta ? { meta: this.meta } : {}) };
  }
}
