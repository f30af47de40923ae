// This node's own advert as format-2 heartbeats summarize it (packet.ts): the advert, its version
// (per incarnation: +1 on every change) and its digest. Pure; Comm and the simulator's node keep
// one each, so both send the same summaries.
//
// The version moves when the digest does, and the digest is of the advert's whole canonical wire
// form: whatever a node advertises rides along without a change here.

import { advertDigest, type HierarchyAdvert } from './packet.ts';

export class OwnAdvert {
  hierarchies: Readonly<Record<string, HierarchyAdvert>> = {};
  version = 0;
  digest = advertDigest({});
  leaving = false;

  /** Take the advert (and the leaving flag); true when either changed: news, send it at once. */
  set(hierarchies: Readonly<Record<string, HierarchyAdvert>>, leaving: boolean): boolean {
    const digest = advertDigest(hierarchies);
    const changed = digest !== this.digest || leaving !== this.leaving;
    if (digest !== this.digest) {
      this.version++;
      this.digest = digest;
    }
    this.hierarchies = hierarchies;
    this.leaving = leaving;
    return changed;
  }

  /** The summary fields of a format-2 heartbeat; with the advert itself when `carry`. */
  summary(carry: boolean): { advertVersion: number; advertDigest: string; hierarchies?: Record<string, HierarchyAdvert> } {
    return carry ? { advertVersion: this.version, advertDigest: this.digest, hierarchies: this.hierarchies as Record<string, HierarchyAdvert> } : { advertVersion: this.version, advertDigest: this.digest };
  }
}
