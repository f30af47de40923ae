// A shared "disk" for the Filesystem agent: a file-backed ext4 on a loop device. Every node
// sees /dev/loopN (the host's /dev), and mounts it in its own mount namespace, so the
// filesystem moves with the hierarchy like a SAN LUN would. Only the ownership layer keeps
// two nodes from mounting it at once; the test bed deliberately does not.
import { alive } from './procs.ts';
import { runSync } from './run.ts';

export interface LoopDisk {
  device: string;
  image: string;
  detach(): void;
}

/**
 * Create `image` (sizeMiB), format it ext4 with the files of `contentDir` (if given) in it,
 * and attach it to a free loop device.
 */
export function createLoopDisk(image: string, sizeMiB = 64, contentDir?: string): LoopDisk {
  runSync(['truncate', '-s', `${sizeMiB}M`, image]);
  // -F: it is a regular file; -q: quiet; no lazy init, so no background writes after mkfs;
  // -d: populate from a directory without mounting anything on the host.
  const populate = contentDir ? ['-d', contentDir] : [];
  runSync(['mkfs.ext4', '-q', '-F', '-E', 'lazy_itable_init=0,lazy_journal_init=0', ...populate, image], { timeoutMs: 60_000 });
  const device = runSync(['losetup', '--find', '--show', image]).stdout.trim();
  if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup gave "${device}" for ${image}`);
  let attached = true;
  return {
    device,
    image,
    detach(): void {
      if (!attached) return;
      attached = false;
      // Nodes' mounts die with their mount namespaces, which may take a moment after
      // SIGKILL; -d on a busy device only sets autoclear, which frees it when unmounted.
      runSync(['losetup', '-d', device], { allowFail: true });
    },
  };
}

/**
 * Detach loop devices left by a crashed test bed: backing file inside a work dir named
 * `hx<pid>...` (see cluster.ts) whose creating process is gone.
 */
export function sweepStaleLoops(): void {
  const r = runSync(['losetup', '--list', '--noheadings', '--output', 'NAME,BACK-FILE'], { allowFail: true });
  for (const line of r.stdout.split('\n')) {
    const [dev, file] = line.trim().split(/\s+/);
    const m = file ? /\/hx(\d+)-[a-z0-9]+-[^/]+\//.exec(file) : null;
    if (!dev || !m || alive(Number(m[1]))) continue;
    runSync(['losetup', '-d', dev], { allowFail: true });
  }
}
