// Durations in the YAML: a bare number is milliseconds; a string needs a unit ("500ms", "2s",
// "10m", "1h", or a compound like "1m30s"). A unitless string such as "30" is refused on
// purpose: Pacemaker reads it as seconds, we would read it as milliseconds, and an admin
// copying a value across would get a timeout 1000x off without noticing.

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

// One "<number><unit>" term; a compound duration is a run of these with nothing in between.
const TERM = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;

/** Milliseconds of a duration value; throws an Error whose message says what is expected. */
export function parseDuration(v: unknown): number {
  if (typeof v === 'number') {
    if (!Number.isFinite(v) || v < 0 || !Number.isInteger(v)) {
      throw new Error(`expected a duration: a whole number of milliseconds >= 0 or a string like "500ms", "2s", "10m"; got ${v}`);
    }
    return v;
  }
  if (typeof v !== 'string') {
    throw new Error(`expected a duration like "500ms", "2s", "10m" (or a number of milliseconds); got ${describe(v)}`);
  }
  const s = v.trim();
  if (/^\d+(\.\d+)?$/.test(s)) {
    throw new Error(`duration "${v}" has no unit: write "${s}ms" or "${s}s" (a bare number, unquoted, means milliseconds)`);
  }
  let total = 0;
  let pos = 0;
  TERM.lastIndex = 0;
  while (pos < s.length) {
    TERM.lastIndex = pos;
    const m = TERM.exec(s);
    if (!m) break;
    total += Number(m[1]) * (UNIT_MS[m[2] ?? ''] ?? Number.NaN);
    pos = TERM.lastIndex;
  }
  if (s.length === 0 || pos !== s.length || !Number.isFinite(total)) {
    throw new Error(`expected a duration like "500ms", "2s", "10m" or "1m30s"; got "${v}"`);
  }
  return Math.round(total);
}

function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return `${typeof v} ${String(v)}`;
}
