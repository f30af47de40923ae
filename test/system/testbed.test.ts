// The namespace test bed itself (bench/lib), without the harness: nodes are isolated hosts,
// both comm paths and the gateway work, faults do what they say, real OCF agents run inside a
// node, watchers see a VIP answering from two nodes, and teardown leaves nothing behind.
// A broken test bed would make every benchmark number meaningless, so it is tested first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { CLIENT_ADDRESS, GATEWAY_ADDRESS, nodeAddress, vipAddress } from '../../bench/lib/addressing.ts';
import { doubleAnswers } from '../../bench/lib/analyze.ts';
import { NetnsCluster, type TestNode } from '../../bench/lib/cluster.ts';
import { DEFAULT_PROFILE, webHierarchy, writeBedConfig } from '../../bench/lib/config.ts';
import { createLoopDisk, type LoopDisk } from '../../bench/lib/disk.ts';
import { ocfAction, type OcfResource } from '../../bench/lib/ocf.ts';
import { AddressSampler, PingProbe, WatcherProbes, addWatchers } from '../../bench/lib/probes.ts';
import { processesInPidNs } from '../../bench/lib/procs.ts';
import { sleep } from '../../bench/lib/run.ts';
import { loadConfig } from '../../hierarchies/load.ts';

const isRoot = process.getuid?.() === 0;
const hasAgents = existsSync('/usr/lib/ocf/resource.d/heartbeat/IPaddr2') && existsSync('/usr/lib/ocf/resource.d/heartbeat/Filesystem');
const skip = !isRoot ? 'needs root (namespaces)' : false;

let c: NetnsCluster;
let disk: LoopDisk | undefined;
const VIP = vipAddress(0);

before(async () => {
  if (skip) return;
  c = await NetnsCluster.create({ nodes: 3, paths: 2 });
  c.addStation('cl', [CLIENT_ADDRESS, GATEWAY_ADDRESS]);
});

after(() => {
  c?.teardown();
});

function node(name: string): TestNode {
  return c.node(name);
}

/** One ICMP echo from `node` to `addr`, 1 s bound. */
async function reaches(from: TestNode, addr: string): Promise<boolean> {
  return (await c.exec(from, ['ping', '-n', '-q', '-c', '1', '-W', '1', addr], { allowFail: true, timeoutMs: 5000 })).code === 0;
}

test('every node is its own host: hostname, pid 1 reaper, private /run', { skip }, async () => {
  const n1 = node('n1');
  assert.equal((await c.exec(n1, ['hostname'])).stdout.trim(), 'n1');
  assert.equal((await c.exec(node('n2'), ['hostname'])).stdout.trim(), 'n2');
  await c.exec(n1, ['sh', '-c', 'echo mine > /run/resource-agents/marker']);
  assert.equal((await c.exec(node('n2'), ['ls', '/run/resource-agents'])).stdout.trim(), '');
  // Orphans re-parented to the node's init are reaped: no zombies left.
  await c.exec(n1, ['sh', '-c', '(sleep 0.1 &) ; (sleep 0.1 &) ; true']);
  await sleep(500);
  const zombies = processesInPidNs(n1.initPid ?? -1).filter((p) => p.state === 'Z');
  assert.deepEqual(zombies, []);
});

test('both comm paths and the gateway are reachable from every node', { skip }, async () => {
  for (const p of [0, 1]) assert.ok(await reaches(node('n1'), nodeAddress(2, p)), `n1 -> n2 on path ${p}`);
  assert.ok(await reaches(node('n3'), nodeAddress(1, 1)));
  assert.ok(await reaches(node('n2'), GATEWAY_ADDRESS));
});

test('one path cut leaves the other; partition isolates; heal restores', { skip }, async () => {
  const n2 = node('n2');
  c.setPath(n2, 1, false);
  assert.equal(await reaches(node('n1'), nodeAddress(2, 1)), false);
  assert.ok(await reaches(node('n1'), nodeAddress(2, 0)));
  c.setPath(n2, 1, true);
  c.partition(n2);
  assert.equal(await reaches(n2, GATEWAY_ADDRESS), false);
  assert.equal(await reaches(node('n1'), nodeAddress(2, 0)), false);
  c.heal(n2);
  assert.ok(await reaches(node('n1'), nodeAddress(2, 1)));
});

test('power-off kills every process of the node; reboot brings it back fresh', { skip }, async () => {
  const n3 = node('n3');
  await c.exec(n3, ['sh', '-c', 'echo x > /run/resource-agents/before']);
  const oldInit = n3.initPid ?? -1;
  c.powerOff(n3);
  await sleep(300);
  assert.deepEqual(processesInPidNs(oldInit), []);
  assert.equal(await reaches(node('n1'), nodeAddress(3, 0)), false);
  await c.reboot(n3);
  assert.ok(await reaches(node('n1'), nodeAddress(3, 0)));
  assert.equal((await c.exec(n3, ['ls', '/run/resource-agents'])).stdout.trim(), '', '/run is empty after a reboot');
});

test('freeze stops the node\'s processes, thaw resumes them', { skip }, async () => {
  const n1 = node('n1');
  const states = (pids: number[]): string[] => processesInPidNs(n1.initPid ?? -1).filter((p) => pids.includes(p.pid)).map((p) => p.state);
  const frozen = c.freeze(n1, true);
  assert.ok(frozen.length > 0);
  // A signal takes effect when the process is next scheduled: poll briefly.
  for (let i = 0; i < 20 && !states(frozen).every((s) => s === 'T'); i++) await sleep(50);
  assert.ok(states(frozen).every((s) => s === 'T'), states(frozen).join(''));
  c.freeze(n1, false);
  for (let i = 0; i < 20 && states(frozen).some((s) => s === 'T'); i++) await sleep(50);
  assert.ok(states(frozen).every((s) => s !== 'T'), states(frozen).join(''));
});

test('real agents in a node: Filesystem mounts in its own mount namespace, IPaddr2 serves the client', { skip: skip || (!hasAgents && 'resource-agents not installed') }, async () => {
  disk = createLoopDisk(join(c.workDir, 'disk.img'), 32);
  c.onTeardown('loop', () => disk?.detach());
  const mnt = join(c.workDir, 'data');
  mkdirSync(mnt, { recursive: true });
  const n1 = node('n1');
  const fs: OcfResource = { instance: 'web.fs', provider: 'heartbeat', type: 'Filesystem', params: { device: disk.device, directory: mnt, fstype: 'ext4' } };
  const ip: OcfResource = { instance: 'web.vip', provider: 'heartbeat', type: 'IPaddr2', params: { ip: VIP, cidr_netmask: '24', nic: 'eth0' } };
  const r1 = await ocfAction(c, n1, fs, 'start');
  assert.equal(r1.rc, 0, r1.output);
  assert.match((await c.exec(n1, ['cat', '/proc/mounts'])).stdout, new RegExp(mnt));
  assert.doesNotMatch((await c.exec(node('n2'), ['cat', '/proc/mounts'])).stdout, new RegExp(mnt), 'mount must not leak to other nodes');
  assert.equal(readdirSync(mnt).length, 0, 'nor to the host');
  const r2 = await ocfAction(c, n1, ip, 'start');
  assert.equal(r2.rc, 0, r2.output);
  const ping = await c.exec(n1, ['true']).then(() => PingProbe.start(c, c.station('cl').netns, VIP, 5));
  await sleep(500);
  assert.ok((await ping.stop()).length > 10, 'client gets answers from the VIP');
  assert.equal((await ocfAction(c, n1, ip, 'monitor')).rc, 0);
  assert.equal((await ocfAction(c, n1, ip, 'stop')).rc, 0);
  assert.equal((await ocfAction(c, n1, fs, 'stop')).rc, 0);
  assert.equal((await ocfAction(c, n1, ip, 'monitor')).rc, 7);
});

test('watchers see a VIP answering from two nodes; the address sampler sees where it is configured', { skip }, async () => {
  const watchers = addWatchers(c, VIP);
  const sampler = new AddressSampler(c, VIP);
  const probes = new WatcherProbes(c, watchers, VIP, 10);
  await sleep(300);
  const t1 = Date.now();
  c.ip(node('n1').netns, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
  await sleep(500);
  const t2 = Date.now();
  c.ip(node('n2').netns, 'addr', 'add', `${VIP}/24`, 'dev', 'eth0');
  await sleep(500);
  c.ip(node('n1').netns, 'addr', 'del', `${VIP}/24`, 'dev', 'eth0');
  await sleep(500);
  const t3 = Date.now();
  const perNode = await probes.stop();
  const configured = sampler.stop();
  c.ip(node('n2').netns, 'addr', 'del', `${VIP}/24`, 'dev', 'eth0');
  // Stop one slot short of t2: replies are padded by half a slot, so n2's first reply right
  // after t2 may otherwise reach back into the last slot before it.
  assert.equal(doubleAnswers(perNode, t1 - 300, t2 - 20, 10).samples, 0, 'only n1 answers at first');
  const both = doubleAnswers(perNode, t2, t3, 10);
  assert.ok(both.samples >= 30 && both.samples <= 70, `~50 slots of double answers, got ${both.samples}`);
  assert.deepEqual(both.nodes, ['n1', 'n2']);
  assert.equal((perNode.get('n3') ?? []).length, 0);
  assert.equal(configured.get('n1')?.length, 1);
  assert.equal(configured.get('n2')?.length, 1);
});

test('generated harness configuration loads', { skip }, () => {
  const cfg = writeBedConfig({
    dir: join(c.workDir, 'etc'),
    nodes: c.nodes,
    paths: c.paths,
    privateMount: c.privateMount,
    ownershipDir: join(c.workDir, 'ownership'),
    profile: DEFAULT_PROFILE,
    hierarchies: [webHierarchy({ nodes: c.nodes, vip: VIP, device: '/dev/loop0', mountDir: join(c.workDir, 'data') })],
  });
  const loaded = loadConfig(cfg.clusterFile);
  assert.deepEqual(loaded.cluster.nodes.map((n) => n.addresses.length), [2, 2, 2]);
  assert.deepEqual(loaded.hierarchies.map((h) => h.name), ['web']);
});

test('teardown removes every namespace and process', { skip }, async () => {
  const names = [c.bridgeNs, ...c.nodes.map((n) => n.netns), ...c.stations.map((s) => s.netns)];
  const inits = c.nodes.map((n) => n.initPid ?? -1);
  c.teardown();
  for (const n of names) assert.equal(existsSync(`/run/netns/${n}`), false, n);
  // SIGKILLed inits are reaped by their launcher a moment later.
  for (let i = 0; i < 50 && inits.some((pid) => processesInPidNs(pid).length > 0); i++) await sleep(100);
  for (const pid of inits) assert.deepEqual(processesInPidNs(pid), []);
});
