// The sg3_utils parsers against outputs recorded on LIO in the test bed (test/scsi), byte for
// byte, and against the ways output can go wrong: every surprise must be `garbled` with the raw
// text attached, never a plausible-looking result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OwnershipError } from '../../fencing/backend.ts';
import {
  classifyExit,
  lastLine,
  normalizeWwn,
  parseLunIdentity,
  parseReadKeys,
  parseReadReservation,
} from '../../fencing/sg-parse.ts';

const src = { disk: 'web/data', path: '/dev/sdc' };

function isGarbled(raw: string) {
  return (err: unknown) => {
    assert.ok(err instanceof OwnershipError, `not an OwnershipError: ${String(err)}`);
    assert.equal(err.code, 'garbled');
    assert.equal(err.raw, raw);
    assert.equal(err.path, '/dev/sdc');
    assert.match(err.message, /^web\/data \(\/dev\/sdc\): unexpected output of /);
    return true;
  };
}

// ---- READ KEYS (sg_persist -n -i -k) ---------------------------------------------------------

test('read keys: none registered', () => {
  assert.deepEqual(parseReadKeys('  PR generation=0x0, there are NO registered reservation keys\n', src), {
    generation: 0,
    keys: [],
  });
});

test('read keys: several, in device order', () => {
  const out = '  PR generation=0x2, 2 registered reservation keys follow:\n    0x1\n    0x2\n';
  assert.deepEqual(parseReadKeys(out, src), { generation: 2, keys: [1n, 2n] });
});

test('read keys: one (singular wording), full 64-bit key', () => {
  const out = '  PR generation=0x7, 1 registered reservation key follows:\n    0x8c3e0a12000004d2\n';
  assert.deepEqual(parseReadKeys(out, src), { generation: 7, keys: [0x8c3e0a12000004d2n] });
});

test('read keys: the same key twice (two paths of one node) stays twice', () => {
  const out = '  PR generation=0x23, 3 registered reservation keys follow:\n    0x11\n    0x11\n    0x22\n';
  assert.deepEqual(parseReadKeys(out, src), { generation: 0x23, keys: [0x11n, 0x11n, 0x22n] });
});

test('read keys: garbled outputs', () => {
  const bad = [
    '',
    'sg_persist failed: Unit attention\n',
    // without -n: INQUIRY banner first (we always pass -n; a banner means the call was wrong)
    '  LIO-ORG   FILEIO            4.0 \n  Peripheral device type: disk\n  PR generation=0x0, there are NO registered reservation keys\n',
    // count and list disagree: a truncated list must not read as fewer keys
    '  PR generation=0x2, 2 registered reservation keys follow:\n    0x1\n',
    '  PR generation=0x2, 1 registered reservation key follows:\n    0x1\n    0x2\n',
    '  PR generation=0x2, 1 registered reservation key follows:\n    banana\n',
    '  PR generation=0x2, 1 registered reservation key follows:\n    0x1234567890abcdef0\n',
    '  PR generation=0x0, there are NO registered reservation keys\n    0x1\n',
    '  PR generation=0x2, 0 registered reservation keys follow:\n',
  ];
  for (const raw of bad) assert.throws(() => parseReadKeys(raw, src), isGarbled(raw), JSON.stringify(raw));
});

// ---- READ RESERVATION (sg_persist -n -i -r) ----------------------------------------------------

test('read reservation: none held', () => {
  assert.deepEqual(parseReadReservation('  PR generation=0x3, there is NO reservation held\n', src), {
    generation: 3,
    holder: null,
    type: null,
  });
});

test('read reservation: type 1 Write Exclusive', () => {
  const out = '  PR generation=0x3, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: Write Exclusive\n';
  assert.deepEqual(parseReadReservation(out, src), { generation: 3, holder: 1n, type: 1 });
});

test('read reservation: type 5 Write Exclusive, registrants only', () => {
  const out =
    '  PR generation=0x2, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: Write Exclusive, registrants only\n';
  assert.deepEqual(parseReadReservation(out, src), { generation: 2, holder: 1n, type: 5 });
});

test('read reservation: other types by name', () => {
  const head = '  PR generation=0xc, Reservation follows:\n    Key=0xffffffffffffffff\n    scope: LU_SCOPE,  type: ';
  assert.equal(parseReadReservation(`${head}Exclusive Access\n`, src).type, 3);
  assert.equal(parseReadReservation(`${head}Exclusive Access, all registrants\n`, src).type, 8);
  assert.equal(parseReadReservation(`${head}Write Exclusive, all registrants\n`, src).holder, 0xffffffffffffffffn);
});

test('read reservation: garbled outputs', () => {
  const bad = [
    '',
    '  PR generation=0x2, Reservation follows:\n',
    '  PR generation=0x2, Reservation follows:\n    Key=0x1\n',
    '  PR generation=0x2, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: Write Mostly\n',
    '  PR generation=0x2, Reservation follows:\n    Key=nope\n    scope: LU_SCOPE,  type: Write Exclusive\n',
    '  PR generation=0x2, Reservation follows:\n    Key=0x1\n    scope: LU_SCOPE,  type: Write Exclusive\n    extra\n',
    '  PR generation=0x3, there is NO reservation held\n    Key=0x1\n',
    '  PR generation=0x2, 2 registered reservation keys follow:\n    0x1\n    0x2\n',
  ];
  for (const raw of bad) assert.throws(() => parseReadReservation(raw, src), isGarbled(raw), JSON.stringify(raw));
});

// ---- LUN identity (VPD page 0x83) ------------------------------------------------------------

const SG_VPD_DI_LIO = `Device Identification VPD page:
  Addressed logical unit:
    designator type: NAA,  code set: Binary
      0x6001405aecd000000000000000000000
    designator type: T10 vendor identification,  code set: ASCII
      vendor id: LIO-ORG 
      vendor specific: FILEIO:harness-scsi-disk0
    designator type: Logical unit group,  code set: Binary
      Logical unit group: 0x0
  Target port:
    designator type: Relative target port,  code set: Binary
     transport: Internet SCSI (iSCSI)
      Relative target port: 0x1
    designator type: Target port group,  code set: Binary
     transport: Internet SCSI (iSCSI)
      Target port group: 0x0
    designator type: SCSI name string,  code set: UTF-8
     transport: Internet SCSI (iSCSI)
      SCSI name string:
      iqn.2024-06.dev.harness.test:shared,t,0x0001
  Target device that contains addressed lu:
    designator type: SCSI name string,  code set: UTF-8
     transport: Internet SCSI (iSCSI)
      SCSI name string:
      iqn.2024-06.dev.harness.test:shared
`;

// scsi_debug: the NAA designator of the LU is not the first one, and the target port and target
// device have NAA designators of their own, which must not be taken for the LU's.
const SG_VPD_DI_SCSI_DEBUG = `Device Identification VPD page:
  Addressed logical unit:
    designator type: T10 vendor identification,  code set: ASCII
      vendor id: Linux   
      vendor specific: scsi_debug      10000
    designator type: NAA,  code set: Binary
      0x3333333000002710
  Target port:
    designator type: Relative target port,  code set: Binary
     transport: Serial Attached SCSI Protocol (SPL-4)
      Relative target port: 0x1
    designator type: NAA,  code set: Binary
     transport: Serial Attached SCSI Protocol (SPL-4)
      0x322222200000270e
  Target device that contains addressed lu:
    designator type: NAA,  code set: Binary
     transport: Serial Attached SCSI Protocol (SPL-4)
      0x322222200000270d
`;

const SG_INQ_83_LIO = `VPD INQUIRY: Device Identification page
  Designation descriptor number 1, descriptor length: 20
    designator_type: NAA,  code_set: Binary
    associated with the Addressed logical unit
      NAA 6, IEEE Company_id: 0x1405
      Vendor Specific Identifier: 0xaecd10000
      Vendor Specific Identifier Extension: 0x0
      [0x6001405aecd100000000000000000000]
  Designation descriptor number 2, descriptor length: 38
    designator_type: T10 vendor identification,  code_set: ASCII
    associated with the Addressed logical unit
      vendor id: LIO-ORG 
      vendor specific: FILEIO:harness-scsi-disk1
  Designation descriptor number 3, descriptor length: 8
    transport: Internet SCSI (iSCSI)
    designator_type: Relative target port,  code_set: Binary
    associated with the Target port
      Relative target port: 0x1
  Designation descriptor number 7, descriptor length: 40
    transport: Internet SCSI (iSCSI)
    designator_type: SCSI name string,  code_set: UTF-8
    associated with the Target device that contains addressed lu
      SCSI name string:
      iqn.2024-06.dev.harness.test:shared
`;

test('identity: sg_vpd -p di on LIO', () => {
  assert.equal(parseLunIdentity(SG_VPD_DI_LIO, src), 'naa.6001405aecd000000000000000000000');
});

test('identity: sg_vpd -p di takes the LU designator, not the port or device ones', () => {
  assert.equal(parseLunIdentity(SG_VPD_DI_SCSI_DEBUG, src), 'naa.3333333000002710');
});

test('identity: sg_inq -p 0x83 on LIO', () => {
  assert.equal(parseLunIdentity(SG_INQ_83_LIO, src), 'naa.6001405aecd100000000000000000000');
});

test('identity: no NAA designator for the LU -> null', () => {
  const out = 'Device Identification VPD page:\n  Addressed logical unit:\n    designator type: T10 vendor identification,  code set: ASCII\n      vendor id: ACME\n  Target port:\n    designator type: NAA,  code set: Binary\n      0x5000000000000001\n';
  assert.equal(parseLunIdentity(out, src), null);
});

test('identity: garbled outputs', () => {
  const bad = [
    '',
    'fetching VPD page failed: Invalid argument\n',
    'Device Identification VPD page:\n',
    'Device Identification VPD page:\n  Addressed logical unit:\n    designator type: NAA,  code set: Binary\n      banana\n',
    'Device Identification VPD page:\n  Addressed logical unit:\n    designator type: NAA,  code set: Binary\n',
    'VPD INQUIRY: Device Identification page\n',
    'VPD INQUIRY: Device Identification page\n  Designation descriptor number 1, descriptor length: 20\n    designator_type: NAA,  code_set: Binary\n    associated with the Addressed logical unit\n',
  ];
  for (const raw of bad) assert.throws(() => parseLunIdentity(raw, src), isGarbled(raw), JSON.stringify(raw));
});

test('normalizeWwn: the spellings admins copy from elsewhere', () => {
  const canon = 'naa.6001405aecd000000000000000000000';
  for (const s of [
    'naa.6001405aecd000000000000000000000',
    'NAA.6001405AECD000000000000000000000',
    '0x6001405aecd000000000000000000000',
    'wwn-0x6001405aecd000000000000000000000',
    '36001405aecd000000000000000000000',
    '6001405aecd000000000000000000000',
    '  6001405aecd000000000000000000000 ',
  ]) {
    assert.equal(normalizeWwn(s), canon, s);
  }
  assert.equal(normalizeWwn('0x3333333000002710'), 'naa.3333333000002710');
  assert.equal(normalizeWwn('0x5000c500a1b2c3d4'), 'naa.5000c500a1b2c3d4');
  for (const s of ['', 'naa.', 'eui.0011223344556677', '0x6001405aecd0', 'naa.7001405aecd000000000000000000000', 'zz01405aecd000000000000000000000']) {
    assert.equal(normalizeWwn(s), null, s);
  }
});

// ---- exit statuses ----------------------------------------------------------------------------

test('exit statuses as recorded on LIO and on non-SCSI devices', () => {
  assert.equal(classifyExit(0, ''), null);
  assert.equal(classifyExit(24, 'PR out (Reserve): Reservation conflict\nsg_persist failed: Reservation conflict\n'), 'conflict');
  assert.equal(
    classifyExit(6, 'Persistent reservation in:\nFixed format, current; Sense key: Unit Attention\nAdditional sense: Registrations preempted\nPR in (Read keys): Unit attention\nsg_persist failed: Unit attention\n'),
    'unit-attention',
  );
  assert.equal(classifyExit(2, 'PR out (Reserve): Device not ready\nsg_persist failed: Device not ready\n'), 'not-ready');
  assert.equal(classifyExit(5, 'PR out (Reserve): bad field in cdb or parameter list (perhaps unsupported service action)\nsg_persist failed: Illegal request\n'), 'unsupported');
  // scsi_debug: a SCSI disk without persistent reservations
  assert.equal(classifyExit(9, 'PR in (Read keys): command not supported\nsg_persist failed: Illegal request, Invalid opcode\n'), 'unsupported');
  assert.equal(classifyExit(52, 'sg_persist: error opening file /dev/does-not-exist (rw): No such file or directory\n'), 'open-failed');
  assert.equal(classifyExit(52, 'sg_vpd failed: No such file or directory\n'), 'open-failed');
  assert.equal(classifyExit(63, 'sg_persist: error opening file /dev/sdz (rw): Permission denied\n'), 'open-failed');
  // loop device (EINVAL) and /dev/null (ENOTTY): they open, but take no SCSI commands
  assert.equal(classifyExit(72, 'Persistent reservation in: pass-through os error: Invalid argument\nPR in (Read keys): Invalid argument\nsg_persist failed: Invalid argument\n'), 'unsupported');
  assert.equal(classifyExit(75, 'Persistent reservation in: pass-through os error: Inappropriate ioctl for device\nsg_persist failed: Inappropriate ioctl for device\n'), 'unsupported');
  assert.equal(classifyExit(55, 'Persistent reservation in: pass-through os error: Input/output error\nsg_persist failed: Input/output error\n'), 'io');
  assert.equal(classifyExit(15, 'sg_persist: file error\n'), 'io');
  assert.equal(classifyExit(99, 'sg_persist failed: Some other error\n'), 'io');
});

test('lastLine: the reason sg3_utils gives last', () => {
  assert.equal(lastLine('PR out (Reserve): Reservation conflict\nsg_persist failed: Reservation conflict\n\n'), 'sg_persist failed: Reservation conflict');
  assert.equal(lastLine(''), '');
});
