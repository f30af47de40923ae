// Deliberately broken safety rules, for the simulator only (`npm run test:sim -- --mutant <name>`):
// each one must make the simulator fail, which shows the simulator can see that rule break.
// Production never sets one; a check costs a comparison with null.
export const MUTANTS = {
  'preempt-without-window': 'preempt a suspect holder without watching its key for the liveness window',
  'ignore-lost-key': 'keep running after the key is lost',
  'ignore-leaving': 'treat a leaving peer that still holds a hierarchy FAILED or held as gone',
  'no-rank-delay': 'race for a free disk without the rank delay',
  'accept-replay': 'accept a heartbeat that does not echo our incarnation',
  'restart-past-budget': 'restart in place past the restart budget instead of failing over',
  'no-guard-before-start': 'write the guard script only after a start finished',
} as const;

export type MutantName = keyof typeof MUTANTS;

let active: MutantName | null = null;

export function setMutant(name: MutantName | null): void {
  active = name;
}

export function mutant(name: MutantName): boolean {
  return active === name;
}
