// Validates an agent's meta-data against the OCF schemas that Debian's resource-agents ships
// (ra-api-1.dtd and metadata.rng in /usr/share/resource-agents), with xmllint (libxml2-utils),
// the same validator ocf-tester uses. Both schemas are applied when present: the DTD is what
// ocf-tester checks, the RELAX NG schema is the stricter, newer one.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const OCF_SCHEMA_DIR = '/usr/share/resource-agents';

export type SchemaResult =
  | { ok: true; schemas: string[] }
  | { ok: false; schemas: string[]; errors: string }
  | { ok: 'unavailable'; why: string };

export async function validateMetadataXml(xml: string, dir = OCF_SCHEMA_DIR): Promise<SchemaResult> {
  const dtd = join(dir, 'ra-api-1.dtd');
  const rng = join(dir, 'metadata.rng');
  const args: string[] = [];
  const schemas: string[] = [];
  if (existsSync(dtd)) args.push('--dtdvalid', dtd) && schemas.push(dtd);
  if (existsSync(rng)) args.push('--relaxng', rng) && schemas.push(rng);
  if (schemas.length === 0) return { ok: 'unavailable', why: `no OCF schema in ${dir} (Debian package resource-agents)` };
  // --nonet: the DOCTYPE's system id must never make us fetch anything.
  const r = await execa('xmllint', ['--noout', '--nonet', ...args, '-'], { input: xml, reject: false, cwd: dir, timeout: 30_000 });
  if (r.failed && (r.exitCode === undefined || (r as { code?: string }).code === 'ENOENT')) {
    return { ok: 'unavailable', why: 'xmllint not found (Debian package libxml2-utils)' };
  }
  if (r.exitCode === 0) return { ok: true, schemas };
  // Keep the validator's own words; drop its "fails to validate" summary lines.
  const errors = String(r.stderr)
    .split('\n')
    .filter((l) => l.trim() !== '' && !/^- fails to validate$|^Document - does not validate/.test(l))
    .slice(0, 12)
    .join('\n');
  return { ok: false, schemas, errors: errors || `xmllint exit ${r.exitCode}` };
}
