// `harness simulate`: run a scenario and say, per node and in simulated time, what each node
// decided and did and why; then where every hierarchy ended up. Same data as text or JSON.
import { loadScenario } from './scenario.ts';
import { World, type TraceLine, type Violation } from './world.ts';

export interface SimulationReport {
  scenario: string;
  description: string;
  nodes: string[];
  hierarchies: Array<{ name: string; priority: string[]; fenced: boolean; switchback: string }>;
  events: TraceLine[];
  end: {
    at: number;
    hierarchies: Record<string, { runningOn: string[]; nodes: Record<string, { phase: string; ownership: string; note: string } | null> }>;
  };
  violations: Violation[];
}

export async function simulate(file: string): Promise<SimulationReport> {
  const s = loadScenario(file);
  const world = new World(s.options);
  const r = await world.run();
  const c = s.options.cluster;
  const end: SimulationReport['end'] = { at: s.options.endAt, hierarchies: {} };
  for (const h of c.hierarchies) {
    const agentRs = h.resources.filter((x) => x.kind === 'agent').map((x) => x.name);
    const nodes: Record<string, { phase: string; ownership: string; note: string } | null> = {};
    for (const n of c.nodes) {
      const rt = world.nodes.get(n)!.p?.state.h[h.name];
      nodes[n] = rt ? { phase: rt.phase, ownership: h.fenced ? rt.ownership : 'not fenced', note: rt.note } : null;
    }
    end.hierarchies[h.name] = { runningOn: world.agents.runners(h.name, agentRs, c.nodes), nodes };
  }
  return {
    scenario: file,
    description: s.description,
    nodes: c.nodes,
    hierarchies: c.hierarchies.map((h) => ({
      name: h.name,
      priority: Object.entries(h.priorities).sort((a, b) => a[1] - b[1]).map(([n]) => n),
      fenced: h.fenced,
      switchback: h.switchback,
    })),
    events: r.trace.filter((l) => l.node !== '!'),
    end,
    violations: r.violations,
  };
}

const secs = (ms: number) => (ms / 1000).toFixed(3).padStart(8);

export function formatReport(r: SimulationReport): string {
  const out: string[] = [];
  if (r.description) out.push(r.description.trim(), '');
  out.push(`nodes: ${r.nodes.join(', ')}`);
  for (const h of r.hierarchies) out.push(`${h.name}: ${h.priority.join(' > ')}; ${h.fenced ? 'fenced' : 'NOT fenced'}, switchback ${h.switchback}`);
  out.push('', `    time  node  what`);
  for (const e of r.events) out.push(`${secs(e.at)}  ${e.node.padEnd(4)}  ${e.text}`);
  out.push('', `at ${(r.end.at / 1000).toFixed(3)} s:`);
  for (const [name, h] of Object.entries(r.end.hierarchies)) {
    out.push(`  ${name}: ${h.runningOn.length === 0 ? 'runs nowhere' : h.runningOn.length === 1 ? `in service on ${h.runningOn[0]}` : `RUNS ON ${h.runningOn.join(' AND ')}`}`);
    for (const [n, v] of Object.entries(h.nodes)) out.push(`    ${n.padEnd(4)} ${v ? `${v.phase}, ownership ${v.ownership}: ${v.note}` : '(daemon not running)'}`);
  }
  out.push(r.violations.length ? r.violations.map((v) => `VIOLATION ${v.rule} at ${(v.at / 1000).toFixed(3)} s: ${v.detail}`).join('\n') : 'invariants: none violated');
  return out.join('\n') + '\n';
}
