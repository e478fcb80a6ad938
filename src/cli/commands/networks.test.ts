import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApiClient } from '../../api-client/client.ts';
import { type Command, CliError, type Io } from '../command.ts';
import { createBody, port, ps } from './containers.ts';
import { ipamConfig, networkConnect, networkCreate, networkDisconnect, networkInspect, networkLs, networkPrune, networkRm } from './networks.ts';

// A fake daemon: answers each request from `reply` and records what it was sent.
let server: Server;
let dir: string;
let sock: string;
let reply: (method: string, url: URL) => { status?: number; body?: unknown } = () => ({});
const requests: { method: string; path: string; query: URLSearchParams; body: unknown }[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'berth-net-test-'));
  sock = join(dir, 'd.sock');
  server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      const url = new URL(req.url!, 'http://x');
      url.pathname = url.pathname.replace(/^\/v[\d.]+/, '');
      requests.push({ method: req.method!, path: url.pathname, query: url.searchParams, body: data ? JSON.parse(data) : undefined });
      const r = reply(req.method!, url);
      res.writeHead(r.status ?? 200, { 'Content-Type': 'application/json' });
      res.end(r.body === undefined ? '' : JSON.stringify(r.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
});
after(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

async function runCmd(cmd: Command, args: string[], stdin = ''): Promise<{ code: number; out: string; err: string; error?: Error }> {
  let out = '', err = '';
  requests.length = 0;
  const io = {
    out: (s: string) => void (out += s), err: (s: string) => void (err += s),
    stdin: (async function* () { if (stdin) yield Buffer.from(stdin); })(), stdout: process.stdout, isTTY: false,
  } as unknown as Io;
  try {
    const code = await cmd.run({ name: 'berth x', args, io, client: () => new ApiClient(sock) });
    return { code: code ?? 0, out, err };
  } catch (e) {
    return { code: (e as CliError).exitCode ?? -1, out, err, error: e as Error };
  }
}

const NET = {
  Name: 'front', Id: 'a'.repeat(64), Created: '2024-05-01T10:00:00.123Z', Scope: 'local', Driver: 'bridge', EnableIPv6: false,
  Internal: false, Attachable: false, Labels: { tier: 'web' }, Options: {}, IPAM: { Driver: 'default', Config: [{ Subnet: '10.1.0.0/24' }] },
};

test('network create sends docker\'s body and prints the Id', async () => {
  reply = () => ({ status: 201, body: { Id: 'f'.repeat(64), Warning: '' } });
  const r = await runCmd(networkCreate, ['--subnet', '10.1.0.0/16', '--gateway', '10.1.0.1', '--ip-range', '10.1.2.0/24', '--label', 'a=b', '-o', 'mtu=1400', '--internal', 'front']);
  assert.equal(r.code, 0, r.error?.message);
  assert.equal(r.out, `${'f'.repeat(64)}\n`);
  assert.deepEqual(requests[0].body, {
    Name: 'front', Driver: 'bridge', Internal: true, Attachable: false, EnableIPv6: false, Labels: { a: 'b' }, Options: { mtu: '1400' },
    IPAM: { Driver: 'default', Config: [{ Subnet: '10.1.0.0/16', Gateway: '10.1.0.1', IPRange: '10.1.2.0/24' }], Options: {} },
  });
  await runCmd(networkCreate, ['back']);
  assert.deepEqual(requests[0].body, {
    Name: 'back', Driver: 'bridge', Internal: false, Attachable: false, EnableIPv6: false, Labels: {}, Options: {}, IPAM: { Driver: 'default', Config: [], Options: {} },
  });
});

test('network create checks the IPAM flags as docker does', async () => {
  assert.throws(() => ipamConfig([], [], ['10.0.0.1'], {}), { message: 'every ip-range or gateway must have a corresponding subnet' });
  assert.throws(() => ipamConfig(['10.0.0.0/24'], [], ['10.0.1.1'], {}), { message: 'no matching subnet for gateway 10.0.1.1' });
  assert.throws(() => ipamConfig(['10.0.0.0/24'], ['10.0.1.0/28'], [], {}), { message: 'no matching subnet for range 10.0.1.0/28' });
  assert.throws(() => ipamConfig(['10.0.0.0/16', '10.0.5.0/24'], [], [], {}), { message: 'multiple overlapping subnet configuration is not supported' });
  assert.throws(() => ipamConfig(['10.0.0/24'], [], ['10.0.0.1'], {}), { message: 'invalid subnet: invalid CIDR address: 10.0.0/24' });
  assert.deepEqual(ipamConfig(['10.0.0.0/24', 'fd00::/64'], [], ['fd00::1', '10.0.0.254'], { host: '10.0.0.5' }), [
    { Subnet: '10.0.0.0/24', Gateway: '10.0.0.254', AuxiliaryAddresses: { host: '10.0.0.5' } }, { Subnet: 'fd00::/64', Gateway: 'fd00::1' },
  ]);
  const r = await runCmd(networkCreate, ['--gateway', '10.0.0.1', 'x']);
  assert.equal(r.code, 1);
  assert.equal(r.error?.message, 'every ip-range or gateway must have a corresponding subnet');
  assert.equal(requests.length, 0);
});

test('network ls: docker\'s columns, sorted by name, -q and --format', async () => {
  reply = () => ({ body: [NET, { ...NET, Name: 'bridge', Id: 'b'.repeat(64), Labels: null }] });
  const r = await runCmd(networkLs, ['--filter', 'driver=bridge']);
  assert.equal(requests[0].query.get('filters'), '{"driver":{"bridge":true}}');
  assert.equal(r.out, [
    'NETWORK ID     NAME      DRIVER    SCOPE',
    `${'b'.repeat(12)}   bridge    bridge    local`,
    `${'a'.repeat(12)}   front     bridge    local`,
    '',
  ].join('\n'));
  assert.equal((await runCmd(networkLs, ['-q'])).out, `${'b'.repeat(12)}\n${'a'.repeat(12)}\n`);
  assert.equal((await runCmd(networkLs, ['-q', '--no-trunc'])).out, `${'b'.repeat(64)}\n${'a'.repeat(64)}\n`);
  assert.equal((await runCmd(networkLs, ['--format', '{{.Name}} {{.IPv6}} {{.Internal}} {{.Label "tier"}} {{.Labels}} {{.CreatedAt}}'])).out,
    'bridge false false   2024-05-01 10:00:00 +0000 UTC\nfront false false web tier=web 2024-05-01 10:00:00 +0000 UTC\n');
  const json = (await runCmd(networkLs, ['--format', 'json'])).out.split('\n')[1];
  assert.deepEqual(Object.keys(JSON.parse(json)), ['CreatedAt', 'Driver', 'ID', 'IPv4', 'IPv6', 'Internal', 'Labels', 'Name', 'Scope']);
});

test('network inspect prints what it found, then the daemon\'s errors', async () => {
  reply = (_m, url) => (url.pathname.endsWith('/front') ? { body: NET } : { status: 404, body: { message: 'network nope not found' } });
  const r = await runCmd(networkInspect, ['front', 'nope']);
  assert.equal(r.code, 1);
  assert.deepEqual(JSON.parse(r.out), [NET]);
  assert.ok(r.out.startsWith('[\n    {\n        "Name": "front"'));
  assert.equal(r.err, 'Error response from daemon: network nope not found\n');
  assert.equal((await runCmd(networkInspect, ['-f', '{{.Driver}}', 'front'])).out, 'bridge\n');
});

test('network rm tries every name; -f ignores missing networks', async () => {
  reply = (_m, url) => (url.pathname.endsWith('/front') ? { status: 204 } : { status: 404, body: { message: 'network nope not found' } });
  const r = await runCmd(networkRm, ['nope', 'front']);
  assert.deepEqual([r.code, r.out, r.err], [1, 'front\n', 'Error response from daemon: network nope not found\n']);
  assert.deepEqual(requests.map((q) => `${q.method} ${q.path}`), ['DELETE /networks/nope', 'DELETE /networks/front']);
  const f = await runCmd(networkRm, ['-f', 'nope', 'front']);
  assert.deepEqual([f.code, f.out, f.err], [0, 'front\n', '']);
});

test('network prune asks first and lists what went', async () => {
  reply = () => ({ body: { NetworksDeleted: ['front', 'back'] } });
  const no = await runCmd(networkPrune, [], 'n\n');
  assert.equal(no.out, 'WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ');
  assert.equal(requests.length, 0);
  const yes = await runCmd(networkPrune, ['--filter', 'until=1h'], 'y\n');
  assert.ok(yes.out.endsWith('[y/N] Deleted Networks:\nfront\nback\n\n'));
  assert.equal(requests[0].query.get('filters'), '{"until":{"1h":true}}');
  reply = () => ({ body: { NetworksDeleted: null } });
  assert.equal((await runCmd(networkPrune, ['-f'])).out, '');
});

test('network connect and disconnect bodies', async () => {
  reply = () => ({ status: 200 });
  const r = await runCmd(networkConnect, ['--alias', 'db', '--alias', 'x,y', '--ip', '10.1.0.9', 'front', 'web']);
  assert.equal(r.code, 0, r.error?.message);
  assert.equal(requests[0].path, '/networks/front/connect');
  assert.deepEqual(requests[0].body, {
    Container: 'web', EndpointConfig: { IPAMConfig: { IPv4Address: '10.1.0.9' }, Links: null, Aliases: ['db', 'x', 'y'], DriverOpts: null },
  });
  await runCmd(networkDisconnect, ['-f', 'front', 'web']);
  assert.deepEqual(requests[0].body, { Container: 'web', Force: true });
  assert.equal((await runCmd(networkConnect, ['front'])).code, 1);
});

test('createBody: --network, --ip and --network-alias as docker sends them', () => {
  const plain = createBody({}, 'busybox', []);
  assert.equal((plain.HostConfig as { NetworkMode: string }).NetworkMode, 'default');
  assert.equal(plain.NetworkingConfig, undefined);
  const lone = createBody({ network: ['front'] }, 'busybox', []);
  assert.equal((lone.HostConfig as { NetworkMode: string }).NetworkMode, 'front');
  assert.equal(lone.NetworkingConfig, undefined);
  const b = createBody({ network: ['front'], ip: '10.1.0.9', 'network-alias': ['db', 'cache'] }, 'busybox', []);
  assert.deepEqual(b.NetworkingConfig, { EndpointsConfig: { front: { Aliases: ['db', 'cache'], IPAMConfig: { IPv4Address: '10.1.0.9' } } } });
  assert.deepEqual(createBody({ network: ['a', 'b'] }, 'busybox', []).NetworkingConfig, { EndpointsConfig: { a: {}, b: {} } });
  assert.deepEqual(createBody({ network: ['front'], ip6: 'fd00::9' }, 'busybox', []).NetworkingConfig, { EndpointsConfig: { front: { IPAMConfig: { IPv6Address: 'fd00::9' } } } });
  assert.deepEqual(createBody({ ip: '172.17.0.9' }, 'busybox', []).NetworkingConfig, { EndpointsConfig: { default: { IPAMConfig: { IPv4Address: '172.17.0.9' } } } });
  assert.throws(() => createBody({ 'network-alias': ['x'] }, 'busybox', []), { message: 'network-scoped aliases are only supported for user-defined networks' });
  assert.throws(() => createBody({ network: ['bridge'], 'network-alias': ['x'] }, 'busybox', []), { exitCode: 125 });
  assert.throws(() => createBody({ network: ['host', 'front'] }, 'busybox', []), { message: 'conflicting options: cannot attach both user-defined and non-user-defined network-modes' });
  assert.throws(() => createBody({ network: ['front'], ip: 'x' }, 'busybox', []), { message: 'invalid argument "x" for "--ip" flag: invalid string being converted to IP address: x' });
});

test('createBody: -p and --expose', () => {
  const b = createBody({ publish: ['8000-8001:80-81', '127.0.0.1:9000:90/udp'], expose: ['100-101'] }, 'busybox', []);
  assert.deepEqual(b.ExposedPorts, { '80/tcp': {}, '81/tcp': {}, '90/udp': {}, '100/tcp': {}, '101/tcp': {} });
  assert.deepEqual((b.HostConfig as { PortBindings: unknown }).PortBindings, {
    '80/tcp': [{ HostIp: '', HostPort: '8000' }], '81/tcp': [{ HostIp: '', HostPort: '8001' }], '90/udp': [{ HostIp: '127.0.0.1', HostPort: '9000' }],
  });
  assert.throws(() => createBody({ publish: ['abc'] }, 'busybox', []), { message: 'invalid containerPort: abc', exitCode: 125 });
  assert.throws(() => createBody({ expose: ['9-8'] }, 'busybox', []), { exitCode: 125 });
});

test('port lists mappings, or one private port\'s', async () => {
  const c = { NetworkSettings: { Ports: {
    '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }, { HostIp: '::', HostPort: '8080' }], '443/tcp': null, '9/udp': [{ HostIp: '127.0.0.1', HostPort: '9009' }],
  } } };
  reply = () => ({ body: c });
  assert.equal((await runCmd(port, ['web'])).out, '9/udp -> 127.0.0.1:9009\n80/tcp -> 0.0.0.0:8080\n80/tcp -> [::]:8080\n');
  assert.equal((await runCmd(port, ['web', '80'])).out, '0.0.0.0:8080\n[::]:8080\n');
  assert.equal((await runCmd(port, ['web', '9/udp'])).out, '127.0.0.1:9009\n');
  const missing = await runCmd(port, ['web', '443']);
  assert.deepEqual([missing.code, missing.error?.message], [1, "Error: No public port '443' published for web"]);
  const bad = await runCmd(port, ['web', 'abc']);
  assert.equal(bad.error?.message, 'Error: invalid port (abc): strconv.ParseUint: parsing "abc": invalid syntax');
});

test('ps shows PORTS and .Networks', async () => {
  reply = () => ({ body: [{
    Id: 'c'.repeat(64), Names: ['/web'], Image: 'nginx', Command: 'nginx', Created: Math.floor(Date.now() / 1000), Status: 'Up 1 second', State: 'running',
    Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { PrivatePort: 443, Type: 'tcp' }],
    Labels: {}, NetworkSettings: { Networks: { front: {}, back: {} } },
  }] });
  const r = await runCmd(ps, ['--format', '{{.Ports}}|{{.Networks}}']);
  assert.equal(r.out, '443/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp|back,front\n');
});
