// `npm test` runs this first (pretest): the tests drive real Debian packages (Debian's
// resource-agents for ocf:heartbeat:Dummy and ocf-tester, libxml2-utils for ocf-tester's
// xmllint, python3 for the bundled webserver agent, iputils ping for utility checks, curl for the
// webserver agent's HTTP monitor, OpenSSH's sshd for the admin tool, procps' pgrep). As root on
// Debian, missing ones are installed with apt-get; otherwise we say what is missing and the tests
// that need it are skipped with that reason. This list covers the unit and integration tiers
// (`npm test`); test/README.md has every tier's commands and packages, and CI
// (.ci/fresh-root.sh) runs `npm ci && npm test` in a fresh Debian root to prove it is complete.
// Set HARNESS_NO_APT=1 to never touch the system.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const NEEDS: Array<{ pkg: string; path: string }> = [
  { pkg: 'resource-agents', path: '/usr/lib/ocf/resource.d/heartbeat/Dummy' },
  { pkg: 'python3', path: '/usr/bin/python3' },
  { pkg: 'iputils-ping', path: '/usr/bin/ping' },
  { pkg: 'curl', path: '/usr/bin/curl' },
  { pkg: 'openssh-server', path: '/usr/sbin/sshd' }, // `harness status --all` against a real sshd
  { pkg: 'libxml2-utils', path: '/usr/bin/xmllint' }, // ocf-tester validates meta-data with xmllint
  { pkg: 'procps', path: '/usr/bin/pgrep' }, // the utility-check tests look for leftover pings
];

const missing = NEEDS.filter((n) => !existsSync(n.path)).map((n) => n.pkg);
if (missing.length === 0) process.exit(0);
const root = process.getuid?.() === 0;
if (!root || process.env.HARNESS_NO_APT === '1' || !existsSync('/usr/bin/apt-get')) {
  console.warn(`test setup: missing Debian packages: ${missing.join(' ')} — tests that need them will be skipped (install: apt-get install ${missing.join(' ')})`);
  process.exit(0);
}
console.log(`test setup: installing ${missing.join(' ')} with apt-get`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
// Without recommends, as .ci/run does: whether apt installs them depends on the machine's apt
// config, so NEEDS must name every package itself (resource-agents only recommends
// libxml2-utils, which ocf-tester needs).
const install = ['install', '-y', '-qq', '--no-install-recommends', ...missing];
try {
  execFileSync('apt-get', install, { stdio: 'inherit', env });
} catch {
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', install, { stdio: 'inherit', env });
}
