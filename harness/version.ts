// The version `harness --version` prints: package.json's, found next to the sources (bin/ → ..)
// or next to the built program (dist/bin/ → ../..), as installed by the Debian package.
import { existsSync, readFileSync } from 'node:fs';

function find(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(url)) {
      const pkg = JSON.parse(readFileSync(url, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'harness' && pkg.version) return pkg.version;
    }
  }
  return 'unknown';
}

export const VERSION: string = find();
