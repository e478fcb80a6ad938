import assert from 'node:assert/strict';
import { test } from 'node:test';
import { displayablePorts, isIP, joinHostPort, naturalLess, parseExpose, parsePublish, parsePublishList } from './ports.ts';

const b = (HostIp: string, HostPort: string) => ({ HostIp, HostPort });

test('parsePublish reads docker\'s -p forms', () => {
  assert.deepEqual(parsePublish('80'), [{ port: '80/tcp', binding: b('', '') }]);
  assert.deepEqual(parsePublish('8080:80'), [{ port: '80/tcp', binding: b('', '8080') }]);
  assert.deepEqual(parsePublish('127.0.0.1:8080:80/udp'), [{ port: '80/udp', binding: b('127.0.0.1', '8080') }]);
  assert.deepEqual(parsePublish('127.0.0.1::80'), [{ port: '80/tcp', binding: b('127.0.0.1', '') }]);
  assert.deepEqual(parsePublish('[::1]:8080:80'), [{ port: '80/tcp', binding: b('::1', '8080') }]);
  assert.deepEqual(parsePublish('[::]::80/SCTP'), [{ port: '80/sctp', binding: b('::', '') }]);
  assert.deepEqual(parsePublish('::1:8080:80'), [{ port: '80/tcp', binding: b('::1', '8080') }]);
  assert.deepEqual(parsePublish('80/'), [{ port: '80/tcp', binding: b('', '') }]);
});

test('parsePublish maps ranges as nat.ParsePortSpec does', () => {
  assert.deepEqual(parsePublish('8000-8002:80-82'), [
    { port: '80/tcp', binding: b('', '8000') }, { port: '81/tcp', binding: b('', '8001') }, { port: '82/tcp', binding: b('', '8002') },
  ]);
  assert.deepEqual(parsePublish('8000-8010:80'), [{ port: '80/tcp', binding: b('', '8000-8010') }]);
  assert.deepEqual(parsePublish('80-81'), [{ port: '80/tcp', binding: b('', '') }, { port: '81/tcp', binding: b('', '') }]);
  assert.deepEqual(parsePublish('0.0.0.0:8000-8000:80'), [{ port: '80/tcp', binding: b('0.0.0.0', '8000') }]);
});

test('parsePublish takes the long syntax', () => {
  assert.deepEqual(parsePublish('target=80,published=8080,protocol=udp'), [{ port: '80/udp', binding: b('', '8080') }]);
  assert.deepEqual(parsePublish('target=80'), [{ port: '80/tcp', binding: b('', '') }]);
  assert.throws(() => parsePublish('published=80'), { message: "missing required 'target' field in publish option 'published=80'" });
});

test('parsePublish errors carry docker\'s text', () => {
  assert.throws(() => parsePublish('abc'), { message: 'invalid containerPort: abc' });
  assert.throws(() => parsePublish('x:80'), { message: 'invalid hostPort: x' });
  assert.throws(() => parsePublish('8000-8001:80-82'), { message: 'invalid ranges specified for container and host Ports: 80-82 and 8000-8001' });
  assert.throws(() => parsePublish('82-80'), { message: 'invalid containerPort: 82-80' });
  assert.throws(() => parsePublish('70000'), { message: 'invalid containerPort: 70000' });
  assert.throws(() => parsePublish('80/xyz'), { message: 'invalid proto: xyz' });
  assert.throws(() => parsePublish('1.2.3:80:80'), { message: 'invalid IP address: 1.2.3' });
  assert.throws(() => parsePublish('8080:'), { message: 'no port specified: 8080:<empty>' });
});

test('parsePublishList exposes every published port and keeps each binding', () => {
  assert.deepEqual(parsePublishList(['8080:80', '127.0.0.1:9090:80', '53/udp']), {
    exposed: { '80/tcp': {}, '53/udp': {} },
    bindings: { '80/tcp': [b('', '8080'), b('127.0.0.1', '9090')], '53/udp': [b('', '')] },
  });
});

test('parseExpose expands ranges', () => {
  assert.deepEqual(parseExpose('80'), ['80/tcp']);
  assert.deepEqual(parseExpose('80-82/udp'), ['80/udp', '81/udp', '82/udp']);
  assert.throws(() => parseExpose('90-80'), { message: 'invalid range format for --expose: 90-80, error: invalid range specified for the Port: 90-80' });
  assert.throws(() => parseExpose('abc'), { message: 'invalid range format for --expose: abc, error: strconv.ParseUint: parsing "abc": invalid syntax' });
  assert.throws(() => parseExpose('80:80'), { message: 'invalid port format for --expose: 80:80' });
});

test('isIP follows net.ParseIP', () => {
  for (const ok of ['0.0.0.0', '127.0.0.1', '::', '::1', 'fe80::1', '2001:db8::5689', '::ffff:1.2.3.4', '1:2:3:4:5:6:7:8']) assert.ok(isIP(ok), ok);
  for (const bad of ['', '1.2.3', '01.2.3.4', '256.1.1.1', ':::', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', 'x']) assert.ok(!isIP(bad), bad);
});

test('displayablePorts formats the PORTS column as docker does', () => {
  assert.equal(displayablePorts([]), '');
  assert.equal(displayablePorts([{ PrivatePort: 80, Type: 'tcp' }]), '80/tcp');
  assert.equal(displayablePorts([
    { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' },
    { IP: '127.0.0.1', PrivatePort: 90, PublicPort: 9000, Type: 'udp' },
  ]), '0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 127.0.0.1:9000->90/udp');
  // Unpublished and same-number ports collapse into ranges; a gap starts a new group.
  assert.equal(displayablePorts([
    { PrivatePort: 82, Type: 'tcp' }, { PrivatePort: 80, Type: 'tcp' }, { PrivatePort: 81, Type: 'tcp' }, { PrivatePort: 90, Type: 'tcp' },
  ]), '80-82/tcp, 90/tcp');
  assert.equal(displayablePorts([
    { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 80, Type: 'tcp' }, { IP: '0.0.0.0', PrivatePort: 81, PublicPort: 81, Type: 'tcp' },
  ]), '0.0.0.0:80-81->80-81/tcp');
  assert.equal(displayablePorts([
    { IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8000, Type: 'tcp' }, { IP: '0.0.0.0', PrivatePort: 81, PublicPort: 8001, Type: 'tcp' },
    { PrivatePort: 443, Type: 'tcp' },
  ]), '443/tcp, 0.0.0.0:8000->80/tcp, 0.0.0.0:8001->81/tcp');
});

test('joinHostPort and naturalLess', () => {
  assert.equal(joinHostPort('0.0.0.0', 80), '0.0.0.0:80');
  assert.equal(joinHostPort('::', '80'), '[::]:80');
  assert.ok(naturalLess('9/tcp', '10/tcp'));
  assert.ok(!naturalLess('10/tcp', '9/tcp'));
  assert.ok(naturalLess('80/tcp -> 0.0.0.0:8080', '80/tcp -> [::]:8080'));
  assert.deepEqual(['443/tcp -> x', '80/udp -> x', '80/tcp -> x'].sort((a, b) => (naturalLess(a, b) ? -1 : naturalLess(b, a) ? 1 : 0)),
    ['80/tcp -> x', '80/udp -> x', '443/tcp -> x']);
});
