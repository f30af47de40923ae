// `npm test` runs this first (pretest): the tests drive real Debian packages (Debian's
// resource-agents for ocf:heartbeat:Dummy, python3 for the bundled webserver agent, iputils
// ping for utility checks, OpenSSH's sshd for the admin tool). As root on Debian, missing ones are
// installed with apt-get; otherwise we say what is missing and the tests that need it are
// skipped with that reason.
// Set HARNESS_NO_APT=1 to never touch the system.
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

const NEEDS: Array<{ pkg: string; path: string }> = [
  { pkg: 'resource-agents', path: '/usr/lib/ocf/resource.d/heartbeat/Dummy' },
  { pkg: 'python3', path: '/usr/bin/python3' },
  { pkg: 'iputils-ping', path: '/usr/bin/ping' },
  { pkg: 'curl', path: '/usr/bin/curl' },
  { pkg: 'openssh-server', path: '/usr/sbin/sshd' }, // `harness status --all` against a real sshd
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
try {
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env });
} catch {
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env });
}
