// Meta-data: every stock heartbeat agent's meta-data must parse (run for real through the
// runner), garbage must be refused with a message naming the source, and parameters are checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLED_AGENT_DIR } from '../../agents/locate.ts';
import type { AgentRef } from '../../agents/locate.ts';
import {
  checkParams,
  clearMetadataCache,
  defaultTimeoutMs,
  MetadataError,
  parseMetadata,
  parseOcfDuration,
  readMetadata,
} from '../../agents/metadata.ts';
import type { AgentMetadata } from '../../agents/metadata.ts';

const OCF_ROOT = '/usr/lib/ocf';
const HEARTBEAT = join(OCF_ROOT, 'resource.d', 'heartbeat');

const GOOD = `<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<!-- a comment -->
<resource-agent name="thing" version="2.1">
<version>1.1</version>
<longdesc lang="en">Uses &lt;tags&gt; &amp; entities &#65;&#x42; <![CDATA[ raw <stuff> & ]]></longdesc>
<shortdesc lang="en">Thing</shortdesc>
<parameters>
<parameter name="ip" unique="1" required="1">
<longdesc lang="en">IP</longdesc><shortdesc lang="en">IP</shortdesc>
<content type="string" default="" />
</parameter>
<parameter name="count" required="0"><content type="integer" default="3"/></parameter>
<parameter name='flag'><content type="boolean" default="false"/></parameter>
<parameter name="mode"><content type="select" default="fast"><option value="fast"/><option value="safe"/></content></parameter>
<parameter name="bare"/>
</parameters>
<actions>
<action name="start" timeout="90s"/>
<action name="stop" timeout="2m"/>
<action name="monitor" timeout="20" interval="10s" depth="0"/>
<action name="monitor" timeout="60s" interval="30s" depth="10"/>
<action name="monitor" timeout="25s" interval="11s" depth="0" role="Promoted"/>
<action name="meta-data" timeout="500ms"/>
</actions>
</resource-agent>
`;

test('parses a full meta-data document', () => {
  const m = parseMetadata(GOOD, 'thing meta-data');
  assert.equal(m.name, 'thing');
  assert.equal(m.version, '2.1');
  assert.deepEqual(m.parameters, [
    { name: 'ip', required: true, type: 'string', default: '', unique: true },
    { name: 'count', required: false, type: 'integer', default: '3' },
    { name: 'flag', required: false, type: 'boolean', default: 'false' },
    { name: 'mode', required: false, type: 'select', default: 'fast', options: ['fast', 'safe'] },
    { name: 'bare', required: false, type: 'string' },
  ]);
  assert.deepEqual(m.actions[0], { name: 'start', timeoutMs: 90_000 });
  assert.deepEqual(m.actions[2], { name: 'monitor', timeoutMs: 20_000, intervalMs: 10_000, depth: 0 });
  assert.equal(m.actions[5]?.timeoutMs, 500);
  assert.equal(m.actions[4]?.role, 'Promoted');
});

test('defaultTimeoutMs: per action, per monitor depth, role-less entries first', () => {
  const m = parseMetadata(GOOD, 'thing');
  assert.equal(defaultTimeoutMs(m, 'start'), 90_000);
  assert.equal(defaultTimeoutMs(m, 'stop'), 120_000);
  assert.equal(defaultTimeoutMs(m, 'monitor'), 20_000);
  assert.equal(defaultTimeoutMs(m, 'monitor', 0), 20_000);
  assert.equal(defaultTimeoutMs(m, 'monitor', 10), 60_000);
  assert.equal(defaultTimeoutMs(m, 'monitor', 20), 20_000, 'unlisted depth falls back to a monitor entry');
  assert.equal(defaultTimeoutMs(m, 'promote'), undefined);
});

test('parseOcfDuration follows Pacemaker: bare numbers are seconds', () => {
  const cases: [string, number | undefined][] = [
    ['20s', 20_000],
    ['20', 20_000],
    ['2m', 120_000],
    ['500ms', 500],
    ['1h', 3_600_000],
    ['30sec', 30_000],
    ['2min', 120_000],
    ['1.5s', 1_500],
    [' 10s ', 10_000],
    ['', undefined],
    ['s', undefined],
    ['10 parsecs', undefined],
    ['-5s', undefined],
    ['10x', undefined],
  ];
  for (const [s, ms] of cases) assert.equal(parseOcfDuration(s), ms, JSON.stringify(s));
});

test('garbage is refused with a clear error naming the source', () => {
  const bad: [string, RegExp][] = [
    ['', /no root element/],
    ['not xml at all', /text before the root element/],
    ['<resource-agent name="x"><actions></resource-agent>', /closing tag <\/resource-agent> does not match <actions>/],
    ['<resource-agent name="x">', /never closed/],
    ['<resource-agent name="x"></resource-agent><again/>', /second root element/],
    ['<resource-agent name="x" name="y"/>', /duplicate attribute name/],
    ['<resource-agent name=x/>', /not quoted/],
    ['<resource-agent name="x">a & b</resource-agent>', /bare '&'/],
    ['<resource-agent name="x">&nbsp;</resource-agent>', /unknown entity/],
    ['<resource-agent name="x">1 < 2</resource-agent>', /not followed by a tag name/],
    ['<resource-agent name="x"><!-- never ends </resource-agent>', /unterminated comment/],
    ['<resource-agent name="x"/> trailing', /text after the root element/],
    ['<agent name="x"/>', /root element is <agent>, expected <resource-agent>/],
    ['<resource-agent/>', /has no name attribute/],
    ['<resource-agent name="x"><parameters><parameter/></parameters></resource-agent>', /<parameter> on line 1 has no name/],
    [
      '<resource-agent name="x"><parameters><parameter name="a"/><parameter name="a"/></parameters></resource-agent>',
      /parameter a is declared twice/,
    ],
    ['<resource-agent name="x"><actions><action name="start" timeout="soon"/></actions></resource-agent>', /timeout="soon" is not a time/],
    ['<resource-agent name="x"><actions><action name="monitor" timeout="1s" depth="deep"/></actions></resource-agent>', /depth="deep"/],
    ['<resource-agent name="x">\n\n<actions>\n</action>', /line 4: closing tag <\/action> does not match <actions>/],
  ];
  for (const [xml, re] of bad) {
    assert.throws(
      () => parseMetadata(xml, '/opt/agents/acme/thing meta-data'),
      (e: unknown) => {
        assert.ok(e instanceof MetadataError, `MetadataError for ${JSON.stringify(xml)}`);
        assert.ok(e.message.startsWith('/opt/agents/acme/thing meta-data: '), e.message);
        assert.match(e.message, re);
        return true;
      },
    );
  }
});

test('checkParams: missing required and type mismatches are errors, unknown names warnings', () => {
  const m = parseMetadata(GOOD, 'thing');
  const ok = checkParams(m, { ip: '10.0.0.1', count: '5', flag: 'yes', mode: 'safe' });
  assert.deepEqual(ok, { errors: [], warnings: [] });
  for (const v of ['true', 'False', 'ON', 'off', '1', '0', 'y', 'n']) {
    assert.deepEqual(checkParams(m, { ip: 'x', flag: v }).errors, [], v);
  }

  const r = checkParams(m, { count: 'three', flag: 'maybe', IP: '1.2.3.4', colour: 'red', mode: 'turbo' });
  assert.equal(r.errors.length, 3, r.errors.join('\n'));
  assert.match(r.errors[0] ?? '', /requires parameter "ip"/);
  assert.ok(r.errors.some((e) => /"count".*integer.*"three"/.test(e)));
  assert.ok(r.errors.some((e) => /"flag".*boolean.*"maybe"/.test(e)));
  assert.ok(r.warnings.some((w) => /no parameter "IP" \(did you mean "ip"\?\)/.test(w)));
  assert.ok(r.warnings.some((w) => /no parameter "colour" \(it takes: ip, count, flag, mode, bare\)/.test(w)));
  assert.ok(r.warnings.some((w) => /"mode".*"turbo" is not one of fast, safe/.test(w)));
  assert.match(checkParams(m, { ip: '' }).errors[0] ?? '', /requires parameter "ip"/);
});

test('bundled agents: meta-data parses and matches what they do', async () => {
  const web: AgentRef = { provider: 'harness', type: 'webserver', path: join(BUNDLED_AGENT_DIR, 'harness', 'webserver') };
  const m = await readMetadata(web, { ocfRoot: OCF_ROOT, nodeName: 'n1' });
  assert.equal(m.name, 'webserver');
  assert.deepEqual(
    m.parameters.map((p) => [p.name, p.required]),
    [
      ['port', true],
      ['address', false],
      ['docroot', false],
      ['body', false],
    ],
  );
  assert.equal(defaultTimeoutMs(m, 'monitor', 10), 20_000);
  assert.deepEqual(checkParams(m, { port: '8080' }), { errors: [], warnings: [] });
  assert.match(checkParams(m, { port: 'http' }).errors[0] ?? '', /integer/);
  assert.equal(await readMetadata(web, { ocfRoot: OCF_ROOT }), m, 'cached per path');

  const hang: AgentRef = { provider: 'harness', type: 'hang', path: join(BUNDLED_AGENT_DIR, 'harness', 'hang') };
  const h = await readMetadata(hang, { ocfRoot: OCF_ROOT });
  assert.deepEqual(h.parameters.map((p) => p.name).sort(), ['fail_on', 'fail_rc', 'hang_on', 'ignore_term', 'state_file', 'stop_delay']);
});

test('readMetadata: an agent whose meta-data fails gives a MetadataError naming the agent', async () => {
  clearMetadataCache();
  const missing: AgentRef = { provider: 'x', type: 'y', path: '/nonexistent/agent' };
  await assert.rejects(readMetadata(missing, { ocfRoot: OCF_ROOT }), (e: unknown) => {
    assert.ok(e instanceof MetadataError);
    assert.match(e.message, /^\/nonexistent\/agent meta-data: failed \(spawn-failed\)/);
    return true;
  });
});

test('every stock heartbeat agent: meta-data runs and parses', { skip: !existsSync(HEARTBEAT) && 'resource-agents not installed' }, async () => {
  clearMetadataCache();
  const agents = readdirSync(HEARTBEAT)
    .filter((n) => !n.startsWith('.'))
    .filter((n) => statSync(join(HEARTBEAT, n)).isFile())
    .map((type): AgentRef => ({ provider: 'heartbeat', type, path: join(HEARTBEAT, type) }));
  assert.ok(agents.length > 50, `found ${agents.length} agents`);
  const failures: string[] = [];
  const parsed: AgentMetadata[] = [];
  const t0 = performance.now();
  // Two at a time: this machine is shared.
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < agents.length) {
      const a = agents[next++] as AgentRef;
      try {
        parsed.push(await readMetadata(a, { ocfRoot: OCF_ROOT, nodeName: 'n1' }));
      } catch (e) {
        failures.push(String(e));
      }
    }
  };
  await Promise.all([worker(), worker()]);
  assert.deepEqual(failures, []);
  assert.equal(parsed.length, agents.length);
  for (const m of parsed) {
    assert.ok(m.actions.some((a) => a.name === 'start' && a.timeoutMs !== undefined), `${m.name} has a start timeout`);
  }
  const ip = parsed.find((m) => m.name === 'IPaddr2');
  assert.ok(ip?.parameters.find((p) => p.name === 'ip')?.required, 'IPaddr2 requires ip');
  console.log(`# ${parsed.length} heartbeat agents' meta-data parsed in ${Math.round(performance.now() - t0)} ms`);
});
