/**
 * Networking end to end, through berth and the real docker CLI: published
 * ports in every form, user networks with names, aliases and isolation,
 * host/none/container modes, live connect and disconnect, the files a
 * container gets, internal networks, outbound NAT to an "outside host" made
 * here, bad input, kill -9 of berthd, leaks over 100 runs, and two daemons
 * side by side.
 *
 * Traffic only ever goes to 127.0.0.0/8, to the container subnets of the
 * test daemons, and to the outside namespace this file makes. Containers
 * look up only container names and aliases of their own network; any other
 * reachability check uses an IP address.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { setTimeout as sleep } from 'node:timers/promises';
import { chainsFor } from '../../src/network/firewall.ts';
import { BERTH, DOCKER, ROOT, type RunResult, TestDaemon, importBusybox } from '../helpers/daemon.ts';

type Cli = 'berth' | 'docker';
const CLIS: readonly Cli[] = ['berth', 'docker'];

function cliOf(d: TestDaemon): (c: Cli, args: string[]) => RunResult {
  return (c, args) => (c === 'berth' ? d.berth(args) : d.docker(args));
}

function ok(r: RunResult, what = 'command'): string {
  assert.equal(r.code, 0, `${what} failed (${r.code})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout;
}

function refused(r: RunResult, pattern: RegExp, what = 'command'): void {
  assert.notEqual(r.code, 0, `${what} should have failed\nstdout: ${r.stdout}`);
  assert.match(r.stderr, pattern, what);
}

/** A shell line for `sh -c`: serves `text` (plus a newline) with busybox httpd on `port`, in the foreground. */
const serve = (text: string, port = 80) => `mkdir -p /www && echo ${text} > /www/index.html && exec httpd -f -p ${port} -h /www`;

/** In a container: fetches `url`, retrying for up to ~5 s while the server comes up. */
const fetchLoop = (url: string) => `i=0; while [ $i -lt 50 ]; do timeout 2 wget -qO- ${url} && exit 0; i=$((i+1)); sleep 0.1; done; exit 1`;

function fetchText(host: string, port: number, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpGet({ host, port, path: '/', timeout: timeoutMs, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

/** Polls until host:port serves `expected` (bounded), then returns it. */
async function waitServes(port: number, expected: string, host = '127.0.0.1', ms = 10_000): Promise<string> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const body = await fetchText(host, port);
      if (body === expected) return body;
      last = new Error(`served ${JSON.stringify(body)}`);
    } catch (e) {
      last = e;
    }
    await sleep(100);
  }
  assert.fail(`${host}:${port} did not serve ${JSON.stringify(expected)}: ${last}`);
}

/** A CLI run without blocking the event loop (for races and batches). */
function runAsync(d: TestDaemon, c: Cli, args: string[]): Promise<RunResult> {
  const env = { ...process.env, ...d.env, DOCKER_CONFIG: join(d.dir, 'docker-config') };
  return new Promise((resolve, reject) => {
    const p = spawn(c === 'berth' ? BERTH : DOCKER, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (b) => (stdout += b));
    p.stderr.on('data', (b) => (stderr += b));
    p.once('error', reject);
    p.once('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function sh(cmd: string, args: string[]): RunResult {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function inspect(d: TestDaemon, name: string): any {
  return JSON.parse(ok(d.docker(['inspect', name]), `inspect ${name}`))[0];
}

function ipOf(d: TestDaemon, name: string, network: string): string {
  const ip = inspect(d, name).NetworkSettings.Networks[network]?.IPAddress;
  assert.match(ip ?? '', /^\d+\.\d+\.\d+\.\d+$/, `${name} has an address on ${network}`);
  return ip;
}

/** What a daemon holds on the host and in its records, for before/after comparisons. */
interface Holdings {
  bridgePorts: number;
  strayVeths: string[];
  rules: number;
  leases: number;
  published: number;
  networks: number;
}

function hostVeths(): string[] {
  return readdirSync('/sys/class/net').filter((n) => n.startsWith('veth'));
}

function holdings(d: TestDaemon, vethsBefore: readonly string[] = []): Holdings {
  const db = new DatabaseSync(join(d.dataRoot, 'berth.db'), { readOnly: true });
  let bridges: string[];
  let leases: number;
  let published: number;
  let networks: number;
  try {
    bridges = (db.prepare("SELECT bridge FROM networks WHERE driver = 'bridge'").all() as { bridge: string }[]).map((r) => r.bridge);
    leases = (db.prepare('SELECT count(*) AS n FROM endpoints WHERE ip IS NOT NULL').get() as { n: number }).n;
    published = (db.prepare('SELECT count(*) AS n FROM published_ports').get() as { n: number }).n;
    networks = (db.prepare('SELECT count(*) AS n FROM networks').get() as { n: number }).n;
  } finally {
    db.close();
  }
  // Host ends of veths on this daemon's bridges, and new veths that are on no bridge at all (half-made pairs).
  let bridgePorts = 0;
  for (const b of bridges) if (existsSync(`/sys/class/net/${b}/brif`)) bridgePorts += readdirSync(`/sys/class/net/${b}/brif`).length;
  const before = new Set(vethsBefore);
  const strayVeths = hostVeths().filter((v) => !before.has(v) && !existsSync(`/sys/class/net/${v}/master`));
  const c = chainsFor(d.net.bridge);
  const names = new Set([c.dnat, c.post, c.forward, c.isolation]);
  const rules = ok(sh('iptables-save', []), 'iptables-save').split('\n').filter((l) => l.startsWith('-A ') && l.split(/\s+/).some((t) => names.has(t))).length;
  return { bridgePorts, strayVeths, rules, leases, published, networks };
}

describe('networking through berth and docker', () => {
  let d: TestDaemon;
  let cli: (c: Cli, args: string[]) => RunResult;
  /** Host ports of this file: its own hundred, so two test files never meet. */
  let P: (k: number) => number;
  /** 10.<201+slot>.<third>.0/24: inside this daemon's own pool of user subnets. */
  let subnet: (third: number) => { cidr: string; ip: (host: number) => string };
  const outside = { ns: '', hostIf: '', hostIp: '', ip: '', httpd: undefined as ChildProcess | undefined };

  function removeOutside(): void {
    if (outside.httpd && outside.httpd.exitCode === null) outside.httpd.kill('SIGKILL');
    if (outside.ns) sh('ip', ['netns', 'del', outside.ns]);
    if (outside.hostIf && existsSync(`/sys/class/net/${outside.hostIf}`)) sh('ip', ['link', 'del', outside.hostIf]);
  }

  before(async () => {
    d = await TestDaemon.start();
    cli = cliOf(d);
    const i = d.net.index;
    P = (k) => 21000 + i * 100 + k;
    subnet = (third) => ({ cidr: `10.${201 + i}.${third}.0/24`, ip: (host) => `10.${201 + i}.${third}.${host}` });
    importBusybox(d);
    importBusybox(d, 'webimg:latest', ['EXPOSE 80', 'CMD ["sh"]']);

    // The "outside host": a namespace whose only route is its /30 to the host, so it can answer
    // a container only if the container's address was masqueraded to the host's.
    Object.assign(outside, { ns: `berth-outside-${i}`, hostIf: `bo${i}h`, hostIp: `10.250.${i}.1`, ip: `10.250.${i}.2` });
    removeOutside();
    const www = join(d.dir, 'outside-www');
    mkdirSync(www);
    writeFileSync(join(www, 'index.html'), 'outside\n');
    for (const args of [
      ['netns', 'add', outside.ns],
      ['link', 'add', outside.hostIf, 'type', 'veth', 'peer', 'name', `bo${i}o`, 'netns', outside.ns],
      ['addr', 'add', `${outside.hostIp}/30`, 'dev', outside.hostIf],
      ['link', 'set', outside.hostIf, 'up'],
      ['-n', outside.ns, 'addr', 'add', `${outside.ip}/30`, 'dev', `bo${i}o`],
      ['-n', outside.ns, 'link', 'set', `bo${i}o`, 'up'],
      ['-n', outside.ns, 'link', 'set', 'lo', 'up'],
    ]) ok(sh('ip', args), `ip ${args.join(' ')}`);
    outside.httpd = spawn('ip', ['netns', 'exec', outside.ns, 'busybox', 'httpd', '-f', '-p', '80', '-h', www], { stdio: 'ignore' });
    await waitServes(80, 'outside\n', outside.ip);
  });

  after(async () => {
    if (d) {
      await d.cleanup();
    }
    removeOutside();
  });

  test('-p HOST:80, -p 127.0.0.1:HOST:80, -p 80, -P with --expose and with an image EXPOSE', async () => {
    ok(d.berth(['run', '-d', '--name', 'pub-host', '-p', `${P(0)}:80`, 'busybox', 'sh', '-c', serve('pub-host')]));
    ok(d.docker(['run', '-d', '--name', 'pub-lo', '-p', `127.0.0.1:${P(1)}:80`, 'busybox', 'sh', '-c', serve('pub-lo')]));
    ok(d.berth(['run', '-d', '--name', 'pub-rand', '-p', '80', 'busybox', 'sh', '-c', serve('pub-rand')]));
    ok(d.docker(['run', '-d', '--name', 'pub-all', '-P', '--expose', '80', 'busybox', 'sh', '-c', serve('pub-all')]));
    ok(d.berth(['run', '-d', '--name', 'pub-img', '-P', 'webimg', 'sh', '-c', serve('pub-img')]));

    await waitServes(P(0), 'pub-host\n');
    await waitServes(P(1), 'pub-lo\n');
    // busybox wget on the host, as a user would.
    assert.equal(ok(sh('busybox', ['timeout', '3', 'busybox', 'wget', '-qO-', `http://127.0.0.1:${P(0)}/`]), 'host wget'), 'pub-host\n');

    assert.equal(ok(d.docker(['port', 'pub-lo'])), `80/tcp -> 127.0.0.1:${P(1)}\n`);
    assert.equal(ok(d.berth(['port', 'pub-host', '80/tcp'])), `0.0.0.0:${P(0)}\n`);
    for (const [c, name] of [['berth', 'pub-rand'], ['docker', 'pub-rand'], ['docker', 'pub-all'], ['berth', 'pub-img']] as const) {
      const out = ok(cli(c, ['port', name]));
      const m = /^80\/tcp -> 0\.0\.0\.0:(\d+)$/m.exec(out);
      assert.ok(m, `${c} port ${name}: ${out}`);
      const port = Number(m[1]);
      assert.ok(port > 0 && port !== 80);
      await waitServes(port, `${name}\n`);
      assert.equal(ok(cli(c, ['port', name, '80'])), `0.0.0.0:${port}\n`);
    }
    // Each random port is its own.
    const randoms = ['pub-rand', 'pub-all', 'pub-img'].map((n) => inspect(d, n).NetworkSettings.Ports['80/tcp'][0].HostPort);
    assert.equal(new Set(randoms).size, 3);
  });

  test('a range -p H1-H2:80-81 publishes two servers', async () => {
    const script = 'mkdir -p /a /b && echo r80 > /a/index.html && echo r81 > /b/index.html && httpd -p 81 -h /b && exec httpd -f -p 80 -h /a';
    ok(d.docker(['run', '-d', '--name', 'pub-range', '-p', `${P(10)}-${P(11)}:80-81`, 'busybox', 'sh', '-c', script]));
    await waitServes(P(10), 'r80\n');
    await waitServes(P(11), 'r81\n');
    for (const c of CLIS) assert.equal(ok(cli(c, ['port', 'pub-range'])), `80/tcp -> 0.0.0.0:${P(10)}\n81/tcp -> 0.0.0.0:${P(11)}\n`);
  });

  test('/udp: a datagram to 127.0.0.1:HOST reaches the container and its answer comes back', async () => {
    ok(d.berth(['run', '-d', '--name', 'pub-udp', '-p', `${P(20)}:5353/udp`, 'busybox', 'sleep', '300']));
    assert.equal(ok(d.docker(['port', 'pub-udp'])), `5353/udp -> 0.0.0.0:${P(20)}\n`);
    const pid = Number(ok(d.berth(['inspect', '-f', '{{.State.Pid}}', 'pub-udp'])).trim());
    // busybox-static has no UDP server applet (its nc is TCP only): a UDP echo server runs in the container's
    // network namespace instead, and prints what it got.
    const echo = "const s=require('node:dgram').createSocket('udp4');s.on('message',(m,r)=>{console.log('got '+m);s.send('echo '+m,r.port,r.address)});s.bind(5353,()=>console.log('ready'))";
    const server = spawn('nsenter', [`--net=/proc/${pid}/ns/net`, join(ROOT, 'bin', 'node24'), '-e', echo], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    server.stdout!.on('data', (b) => (log += b));
    server.stderr!.on('data', (b) => (log += b));
    try {
      const deadline = Date.now() + 10_000;
      while (!log.includes('ready') && Date.now() < deadline) await sleep(50);
      assert.match(log, /ready/, log);
      const reply = await new Promise<string>((resolve, reject) => {
        const s = createSocket('udp4');
        const timer = setInterval(() => s.send('hello-udp', P(20), '127.0.0.1'), 200);
        const give = setTimeout(() => { clearInterval(timer); s.close(); reject(new Error(`no UDP answer; server log: ${log}`)); }, 5000);
        s.on('message', (m) => { clearInterval(timer); clearTimeout(give); s.close(); resolve(String(m)); });
        s.send('hello-udp', P(20), '127.0.0.1');
      });
      assert.equal(reply, 'echo hello-udp');
      assert.match(log, /^got hello-udp$/m);
    } finally {
      server.kill('SIGKILL');
    }
  });

  test('port, inspect and ps show the published ports and the bridge address', () => {
    const [bip] = d.net.bip.split('/');
    const prefix = bip.split('.').slice(0, 3).join('.');
    for (const c of CLIS) {
      const n = JSON.parse(ok(cli(c, ['inspect', 'pub-host'])))[0].NetworkSettings;
      assert.deepEqual(n.Ports, { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: String(P(0)) }] });
      assert.ok(n.IPAddress.startsWith(`${prefix}.`) && n.IPAddress !== bip, n.IPAddress);
      assert.equal(n.Gateway, bip);
      assert.equal(n.IPPrefixLen, 24);
      assert.equal(n.Networks.bridge.IPAddress, n.IPAddress);
      assert.equal(n.Networks.bridge.Gateway, bip);
      assert.match(n.Networks.bridge.MacAddress, /^02:42(:[0-9a-f]{2}){4}$/);
      const all = JSON.parse(ok(cli(c, ['inspect', 'pub-all'])))[0].NetworkSettings.Ports;
      assert.deepEqual(Object.keys(all), ['80/tcp']);

      const ps = ok(cli(c, ['ps', '--format', '{{.Names}}|{{.Ports}}']));
      const ports = Object.fromEntries(ps.trim().split('\n').map((l) => l.split('|')));
      assert.equal(ports['pub-host'], `0.0.0.0:${P(0)}->80/tcp`);
      assert.equal(ports['pub-lo'], `127.0.0.1:${P(1)}->80/tcp`);
      // As docker: only ports published on the same number are shown as a range.
      assert.equal(ports['pub-range'], `0.0.0.0:${P(10)}->80/tcp, 0.0.0.0:${P(11)}->81/tcp`);
      assert.equal(ports['pub-udp'], `0.0.0.0:${P(20)}->5353/udp`);
      const table = ok(cli(c, ['ps', '--filter', 'name=pub-host']));
      assert.match(table, /PORTS/);
      assert.match(table, new RegExp(`0\\.0\\.0\\.0:${P(0)}->80/tcp\\s+pub-host`));
      assert.equal(ok(cli(c, ['ps', '-q', '--filter', `publish=${P(0)}`])).trim().length, 12);
    }
  });

  test('a published port answers on every loopback address, through the gateway, and to the container itself', async () => {
    assert.equal(await fetchText('127.0.0.2', P(0)), 'pub-host\n');
    // Published on 127.0.0.1 only: 127.0.0.2 is not forwarded, and nothing else listens there.
    await assert.rejects(fetchText('127.0.0.2', P(1)), /ECONNREFUSED/);
    const [gw] = d.net.bip.split('/');
    assert.equal(ok(d.docker(['run', '--rm', 'busybox', 'timeout', '3', 'wget', '-qO-', `http://${gw}:${P(0)}/`]), 'another container via the gateway'), 'pub-host\n');
    assert.equal(ok(d.berth(['exec', 'pub-host', 'timeout', '3', 'wget', '-qO-', `http://${gw}:${P(0)}/`]), 'hairpin'), 'pub-host\n');
  });

  test('a user network: ping, wget and nslookup by name and by alias', async () => {
    const s = subnet(10);
    ok(d.docker(['network', 'create', '--subnet', s.cidr, 'usr']));
    ok(d.berth(['run', '-d', '--name', 'usr-a', '--network', 'usr', '--network-alias', 'alpha', 'busybox', 'sh', '-c', serve('usr-a')]));
    ok(d.docker(['run', '-d', '--name', 'usr-b', '--network', 'usr', '--network-alias', 'beta', 'busybox', 'sh', '-c', serve('usr-b')]));
    const ipA = ipOf(d, 'usr-a', 'usr');
    const ipB = ipOf(d, 'usr-b', 'usr');
    const net24 = s.ip(0).slice(0, -1);
    assert.ok(ipA.startsWith(net24) && ipB.startsWith(net24), `${ipA} ${ipB} in ${s.cidr}`);
    assert.notEqual(ipA, ipB);
    const pairs = [['berth', 'usr-a', 'usr-b', 'beta', ipB], ['docker', 'usr-b', 'usr-a', 'alpha', ipA]] as const;
    for (const [c, from, to, alias, ip] of pairs) {
      assert.equal(ok(cli(c, ['exec', from, 'sh', '-c', fetchLoop(`http://${to}/`)]), `${from} wget ${to}`), `${to}\n`);
      assert.equal(ok(cli(c, ['exec', from, 'timeout', '2', 'wget', '-qO-', `http://${alias}/`]), `${from} wget ${alias}`), `${to}\n`);
      for (const name of [to, alias]) {
        const ping = ok(cli(c, ['exec', from, 'ping', '-c1', '-W2', name]), `${from} ping ${name}`);
        assert.match(ping, new RegExp(`PING ${name} \\(${ip.replace(/\./g, '\\.')}\\)`));
        assert.match(ping, /1 packets received/);
      }
      const ns = cli(c, ['exec', from, 'nslookup', to]);
      assert.match(ns.stdout, new RegExp(`Name:\\s+${to}\\nAddress:\\s+${ip.replace(/\./g, '\\.')}\\n`), ns.stdout + ns.stderr);
    }
    // A port published from a user network serves on the host too.
    ok(d.berth(['run', '-d', '--name', 'usr-pub', '--network', 'usr', '-p', `${P(40)}:80`, 'busybox', 'sh', '-c', serve('usr-pub')]));
    await waitServes(P(40), 'usr-pub\n');
    ok(d.berth(['rm', '-f', 'usr-pub']));
    // network inspect lists both members.
    const net = JSON.parse(ok(d.berth(['network', 'inspect', 'usr'])))[0];
    assert.deepEqual(Object.values(net.Containers).map((x: any) => x.Name).sort(), ['usr-a', 'usr-b']);
    assert.equal(net.IPAM.Config[0].Subnet, s.cidr);
  });

  test('a container on another user network cannot reach them by IP', async () => {
    ok(d.berth(['network', 'create', '--subnet', subnet(11).cidr, 'other']));
    const ipA = ipOf(d, 'usr-a', 'usr');
    const pubIp = inspect(d, 'pub-host').NetworkSettings.IPAddress;
    const probe = `ping -c1 -W1 ${ipA} >/dev/null 2>&1; echo ping=$?; timeout 1 wget -qO- http://${ipA}/; echo wget=$?`;
    // The probes wait for their timeouts: run them side by side.
    const t0 = Date.now();
    const [viaBerth, viaDocker, fromBridge, fromUser] = await Promise.all([
      ...CLIS.map((c) => runAsync(d, c, ['run', '--rm', '--network', 'other', 'busybox', 'sh', '-c', probe])),
      // Nor between a user network and the default bridge, either way.
      runAsync(d, 'docker', ['run', '--rm', 'busybox', 'sh', '-c', `timeout 1 wget -qO- http://${ipA}/; echo wget=$?`]),
      runAsync(d, 'berth', ['exec', 'usr-a', 'sh', '-c', `timeout 1 wget -qO- http://${pubIp}/; echo wget=$?`]),
    ]);
    for (const r of [viaBerth, viaDocker]) {
      const out = ok(r);
      assert.match(out, /^ping=1$/m, out);
      assert.match(out, /^wget=[1-9]\d*$/m, out);
      assert.doesNotMatch(out, /usr-a/);
    }
    assert.match(ok(fromBridge), /^wget=[1-9]\d*$/m);
    assert.match(ok(fromUser), /^wget=[1-9]\d*$/m);
    assert.ok(Date.now() - t0 < 15_000);
  });

  test('--network none has only lo; --network host sees the host\'s interfaces', () => {
    for (const c of CLIS) {
      const none = ok(cli(c, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'ip -o link; echo ---; cat /proc/net/dev']));
      const [links, dev] = none.split('---\n');
      assert.deepEqual(links.trim().split('\n').map((l) => l.split(':')[1].trim()), ['lo']);
      assert.deepEqual(dev.trim().split('\n').slice(2).map((l) => l.split(':')[0].trim()), ['lo']);

      const hostBefore = readdirSync('/sys/class/net');
      const inside = ok(cli(c, ['run', '--rm', '--network', 'host', 'busybox', 'cat', '/proc/net/dev'])).trim().split('\n').slice(2).map((l) => l.split(':')[0].trim());
      const hostAfter = new Set(readdirSync('/sys/class/net'));
      assert.ok(inside.includes(d.net.bridge), `${d.net.bridge} visible inside: ${inside}`);
      assert.ok(inside.includes(outside.hostIf), `${outside.hostIf} visible inside`);
      // Every host interface that lived through the run is there (other daemons' veths and bridges may come and go meanwhile).
      for (const n of hostBefore) if (hostAfter.has(n) && !n.startsWith('veth')) assert.ok(inside.includes(n), `${n} missing inside: ${inside}`);
      assert.ok(inside.length >= 4, `${inside}`);
    }
  });

  test('--network container:<name> shares the other container\'s network', () => {
    const ip = inspect(d, 'pub-host').NetworkSettings.IPAddress;
    for (const c of CLIS) {
      const out = ok(cli(c, ['run', '--rm', '--network', 'container:pub-host', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0; timeout 2 wget -qO- http://127.0.0.1/']));
      assert.match(out, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
      assert.match(out, /^pub-host$/m);
    }
    refused(d.berth(['run', '--rm', '--network', 'container:pub-host', '-p', '80', 'busybox', 'true']), /conflicting options/);
  });

  test('network connect --alias --ip adds eth1 live and disconnect takes it away', () => {
    const s = subnet(10);
    ok(d.berth(['run', '-d', '--name', 'conn', 'busybox', 'sh', '-c', serve('conn')]));
    for (const [c, other] of [['docker', 'berth'], ['berth', 'docker']] as const) {
      const ip = s.ip(c === 'docker' ? 77 : 78);
      ok(cli(c, ['network', 'connect', '--alias', 'xconn', '--ip', ip, 'usr', 'conn']), 'network connect');
      const addr = ok(cli(other, ['exec', 'conn', 'ip', '-o', '-4', 'addr', 'show', 'eth1']));
      assert.match(addr, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
      assert.equal(ipOf(d, 'conn', 'usr'), ip);
      assert.match(ok(cli(other, ['exec', 'usr-a', 'ping', '-c1', '-W2', 'xconn'])), new RegExp(`\\(${ip.replace(/\./g, '\\.')}\\)`));
      assert.equal(ok(cli(c, ['exec', 'usr-b', 'sh', '-c', fetchLoop('http://xconn/')])), 'conn\n');
      assert.equal(ok(cli(c, ['exec', 'usr-b', 'timeout', '2', 'wget', '-qO-', 'http://conn/'])), 'conn\n');

      ok(cli(other, ['network', 'disconnect', 'usr', 'conn']), 'network disconnect');
      const links = ok(cli(c, ['exec', 'conn', 'ip', '-o', 'link'])).trim().split('\n').map((l) => l.split(':')[1].trim().replace(/@.*/, ''));
      assert.deepEqual(links.sort(), ['eth0', 'lo']);
      assert.deepEqual(Object.keys(inspect(d, 'conn').NetworkSettings.Networks), ['bridge']);
      assert.match(ok(cli(c, ['exec', 'usr-a', 'sh', '-c', `ping -c1 -W1 ${ip} >/dev/null 2>&1; echo ping=$?`])), /^ping=1$/m);
      // Still served on the default bridge.
      assert.equal(ok(cli(c, ['exec', 'conn', 'timeout', '2', 'wget', '-qO-', 'http://127.0.0.1/'])), 'conn\n');
    }
    // A container connected before it starts gets the interface at start.
    ok(d.berth(['create', '--name', 'late', 'busybox', 'sh', '-c', serve('late')]));
    ok(d.docker(['network', 'connect', '--alias', 'lateal', 'usr', 'late']));
    refused(d.docker(['network', 'connect', 'usr', 'late']), /already exists in network usr/, 'connect twice');
    ok(d.berth(['start', 'late']));
    assert.match(ok(d.docker(['exec', 'late', 'ip', '-o', '-4', 'addr', 'show', 'eth1'])), new RegExp(`inet ${s.ip(0).slice(0, -1).replace(/\./g, '\\.')}\\d+/24`));
    assert.equal(ok(d.berth(['exec', 'usr-a', 'sh', '-c', fetchLoop('http://lateal/')])), 'late\n');
    ok(d.berth(['rm', '-f', 'late']));
  });

  test('a published port follows its container when the network it led to is disconnected', async () => {
    ok(d.berth(['run', '-d', '--name', 'mover', '-p', `${P(60)}:80`, 'busybox', 'sh', '-c', serve('mover')]));
    await waitServes(P(60), 'mover\n');
    const bridgeIp = inspect(d, 'mover').NetworkSettings.IPAddress;
    ok(d.docker(['network', 'connect', 'usr', 'mover']));
    ok(d.berth(['network', 'disconnect', 'bridge', 'mover']));
    const usrIp = ipOf(d, 'mover', 'usr');
    // The DNAT rule now leads to the address the container still has, not to the freed one (which the next container would get).
    const dnat = ok(sh('iptables-save', ['-t', 'nat'])).split('\n').filter((l) => l.startsWith(`-A ${chainsFor(d.net.bridge).dnat} `) && l.includes(`--dport ${P(60)} `));
    assert.deepEqual(dnat.map((l) => l.replace(/.*--to-destination /, '')), [`${usrIp}:80`], `was ${bridgeIp}`);
    await waitServes(P(60), 'mover\n');
    ok(d.docker(['rm', '-f', 'mover']));
  });

  test('--ip, --add-host, --dns and --dns-search land in the container; a user network\'s resolv.conf names its gateway', () => {
    const s = subnet(10);
    for (const [c, host] of [['berth', 50], ['docker', 51]] as const) {
      assert.match(ok(cli(c, ['run', '--rm', '--network', 'usr', '--ip', s.ip(host), 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0'])),
        new RegExp(`inet ${s.ip(host).replace(/\./g, '\\.')}/24`));
      const hosts = ok(cli(c, ['run', '--rm', '--add-host', 'myhost:1.2.3.4', '--add-host', 'other.test:5.6.7.8', 'busybox', 'cat', '/etc/hosts']));
      assert.match(hosts, /^1\.2\.3\.4\s+myhost$/m);
      assert.match(hosts, /^5\.6\.7\.8\s+other\.test$/m);
      assert.match(hosts, /^127\.0\.0\.1\s+localhost$/m);
      const resolv = ok(cli(c, ['run', '--rm', '--dns', '127.0.0.1', '--dns-search', 'example.test', 'busybox', 'cat', '/etc/resolv.conf']));
      assert.deepEqual(resolv.trim().split('\n').filter((l) => /^(nameserver|search)/.test(l)), ['nameserver 127.0.0.1', 'search example.test']);
      const user = ok(cli(c, ['run', '--rm', '--network', 'usr', 'busybox', 'cat', '/etc/resolv.conf']));
      assert.deepEqual(user.split('\n').filter((l) => l.startsWith('nameserver')), [`nameserver ${s.ip(1)}`]);
    }
  });

  test('outbound NAT: containers on the default bridge and on a user network reach an outside host', () => {
    for (const [c, net] of [['berth', 'bridge'], ['docker', 'bridge'], ['berth', 'usr'], ['docker', 'other']] as const) {
      const out = cli(c, ['run', '--rm', '--network', net, 'busybox', 'timeout', '3', 'wget', '-qO-', `http://${outside.ip}/`]);
      assert.equal(ok(out, `${c} on ${net} to the outside`), 'outside\n');
    }
  });

  test('--internal: members reach each other but not the outside', () => {
    ok(d.docker(['network', 'create', '--internal', '--subnet', subnet(12).cidr, 'intl']));
    assert.equal(JSON.parse(ok(d.berth(['network', 'inspect', 'intl'])))[0].Internal, true);
    ok(d.berth(['run', '-d', '--name', 'intl-a', '--network', 'intl', 'busybox', 'sh', '-c', serve('intl-a')]));
    for (const c of CLIS) {
      const script = `${fetchLoop('http://intl-a/')}`;
      assert.equal(ok(cli(c, ['run', '--rm', '--network', 'intl', 'busybox', 'sh', '-c', script])), 'intl-a\n');
      const out = ok(cli(c, ['run', '--rm', '--network', 'intl', 'busybox', 'sh', '-c',
        `ping -c1 -W2 intl-a >/dev/null; echo ping=$?; timeout 2 wget -qO- http://${outside.ip}/; echo out=$?; ping -c1 -W1 ${outside.ip} >/dev/null 2>&1; echo outping=$?`]));
      assert.match(out, /^ping=0$/m, out);
      assert.match(out, /^out=[1-9]\d*$/m, out);
      assert.match(out, /^outping=1$/m, out);
      assert.doesNotMatch(out, /outside/);
    }
  });

  test('bad input is refused with a clear error and leaves nothing behind', async () => {
    const vethsBefore = hostVeths();
    const start = holdings(d, vethsBefore);
    const containersBefore = ok(d.berth(['ps', '-aq'])).trim().split('\n').length;
    const s = subnet(10);

    refused(d.berth(['network', 'create', '--subnet', `10.${201 + d.net.index}.10.128/25`, 'ovl1']), /overlaps/, 'overlapping subnet (berth)');
    refused(d.docker(['network', 'create', '--subnet', `10.${201 + d.net.index}.0.0/16`, 'ovl2']), /overlaps/, 'overlapping subnet (docker)');
    refused(d.docker(['network', 'create', '--subnet', d.net.bip.replace(/\.1\//, '.0/'), 'ovl3']), /overlaps/, 'the default bridge\'s subnet');
    refused(d.docker(['network', 'create', 'usr']), /network with name usr already exists/, 'duplicate name (docker)');
    refused(d.berth(['network', 'create', 'usr']), /network with name usr already exists/, 'duplicate name (berth)');
    for (const c of CLIS) refused(cli(c, ['network', 'rm', 'usr']), /has active endpoints/, `${c} network rm in use`);
    for (const c of CLIS) assert.match(ok(cli(c, ['network', 'ls', '--format', '{{.Name}}'])), /^usr$/m);

    refused(d.berth(['run', '-d', '--name', 'bad-ip1', '--network', 'usr', '--ip', '10.99.0.5', 'busybox', 'sleep', '30']), /no configured subnet/, '--ip outside (berth)');
    refused(d.docker(['run', '-d', '--name', 'bad-ip2', '--network', 'usr', '--ip', '10.99.0.5', 'busybox', 'sleep', '30']), /no configured subnet/, '--ip outside (docker)');
    const taken = ipOf(d, 'usr-a', 'usr');
    refused(d.berth(['run', '-d', '--name', 'bad-ip3', '--network', 'usr', '--ip', taken, 'busybox', 'sleep', '30']), /Address already in use/, '--ip taken (berth)');
    refused(d.docker(['run', '-d', '--name', 'bad-ip4', '--network', 'usr', '--ip', taken, 'busybox', 'sleep', '30']), /Address already in use/, '--ip taken (docker)');
    refused(d.berth(['run', '-d', '--network', 'usr', '--ip', s.ip(1), 'busybox', 'sleep', '30']), /gateway/, '--ip of the gateway');

    for (const c of CLIS) {
      refused(cli(c, ['run', '-d', '-p', 'abc', 'busybox', 'true']), /invalid/i, `${c} -p abc`);
      refused(cli(c, ['run', '-d', '-p', '70000:80', 'busybox', 'true']), /invalid/i, `${c} -p 70000:80`);
      refused(cli(c, ['run', '-d', '-p', `${P(0)}:80`, 'busybox', 'sleep', '30']), /port is already allocated/, `${c} port of pub-host`);
    }
    // A host program holds the port.
    const server = createServer();
    await new Promise<void>((r) => server.listen(P(30), '0.0.0.0', r));
    try {
      for (const c of CLIS) refused(cli(c, ['run', '-d', '-p', `${P(30)}:80`, 'busybox', 'sleep', '30']), /port is already allocated/, `${c} port held by the host`);
    } finally {
      await new Promise((r) => server.close(r));
    }
    // Four at once for one port: exactly one wins.
    const race = await Promise.all([0, 1, 2, 3].map((k) => runAsync(d, CLIS[k % 2], ['run', '-d', '--name', `race-${k}`, '-p', `${P(31)}:80`, 'busybox', 'sleep', '60'])));
    const won = race.filter((r) => r.code === 0);
    assert.equal(won.length, 1, race.map((r) => `${r.code} ${r.stderr.trim()}`).join('\n'));
    for (const r of race) if (r.code !== 0) assert.match(r.stderr, /port is already allocated/);
    assert.equal(ok(d.berth(['port', won[0].stdout.trim()])), `80/tcp -> 0.0.0.0:${P(31)}\n`);
    ok(d.berth(['rm', '-f', won[0].stdout.trim()]));

    // Runs that failed at start leave a created container, as with Docker: no address, no port, no device.
    const leftovers = ok(d.berth(['ps', '-aq', '--filter', 'status=created'])).trim().split('\n').filter(Boolean);
    for (const id of leftovers) assert.equal(inspect(d, id).NetworkSettings.IPAddress, '');
    if (leftovers.length) ok(d.berth(['rm', ...leftovers]));
    assert.equal(ok(d.berth(['ps', '-aq'])).trim().split('\n').length, containersBefore);
    assert.deepEqual(holdings(d, vethsBefore), start);
    // The port that the race used is free again.
    ok(d.docker(['run', '--rm', '-p', `${P(31)}:80`, 'busybox', 'true']));
  });

  test('kill -9 of berthd: ports keep serving, names resolve after the restart, reservations are restored', async () => {
    const ipB = ipOf(d, 'usr-b', 'usr');
    await d.kill9();
    // Traffic does not pass through berthd.
    await waitServes(P(0), 'pub-host\n', '127.0.0.1', 3000);
    await waitServes(P(10), 'r80\n', '127.0.0.1', 3000);
    await d.startProcess();
    await waitServes(P(0), 'pub-host\n', '127.0.0.1', 3000);
    await waitServes(P(1), 'pub-lo\n', '127.0.0.1', 3000);
    assert.match(ok(d.berth(['exec', 'usr-a', 'ping', '-c1', '-W2', 'usr-b'])), new RegExp(`\\(${ipB.replace(/\./g, '\\.')}\\)`));
    assert.equal(ok(d.docker(['exec', 'usr-a', 'sh', '-c', fetchLoop('http://beta/')])), 'usr-b\n');
    const ns = d.docker(['exec', 'usr-b', 'nslookup', 'alpha']);
    assert.match(ns.stdout, new RegExp(`Address:\\s+${ipOf(d, 'usr-a', 'usr').replace(/\./g, '\\.')}\\n`), ns.stdout + ns.stderr);
    for (const c of CLIS) {
      refused(cli(c, ['run', '-d', '-p', `${P(0)}:80`, 'busybox', 'sleep', '30']), /port is already allocated/, `${c} port after the restart`);
      refused(cli(c, ['run', '-d', '-p', `${P(20)}:53/udp`, 'busybox', 'sleep', '30']), /port is already allocated/, `${c} udp port after the restart`);
      refused(cli(c, ['run', '-d', '--network', 'usr', '--ip', ipB, 'busybox', 'sleep', '30']), /Address already in use/, `${c} address after the restart`);
    }
    const leftovers = ok(d.berth(['ps', '-aq', '--filter', 'status=created'])).trim().split('\n').filter(Boolean);
    if (leftovers.length) ok(d.berth(['rm', ...leftovers]));
  });

  test('stop frees the host port, start takes it again, restart keeps it', async () => {
    ok(d.berth(['run', '-d', '--name', 'cycle', '-p', `${P(50)}:80`, 'busybox', 'sh', '-c', serve('cycle')]));
    await waitServes(P(50), 'cycle\n');
    ok(d.docker(['stop', '-t', '0', 'cycle']));
    assert.deepEqual(inspect(d, 'cycle').NetworkSettings.Ports, {});
    assert.equal(ok(d.berth(['port', 'cycle'])), '');
    await assert.rejects(fetchText('127.0.0.1', P(50)));
    ok(d.docker(['run', '-d', '--name', 'cycle2', '-p', `${P(50)}:80`, 'busybox', 'sh', '-c', serve('cycle2')]));
    await waitServes(P(50), 'cycle2\n');
    refused(d.berth(['start', 'cycle']), /port is already allocated/, 'start on a taken port');
    assert.equal(inspect(d, 'cycle').State.Running, false);
    ok(d.berth(['rm', '-f', 'cycle2']));
    ok(d.berth(['start', 'cycle']));
    await waitServes(P(50), 'cycle\n');
    const ip = inspect(d, 'cycle').NetworkSettings.IPAddress;
    for (const c of CLIS) {
      ok(cli(c, ['restart', '-t', '0', 'cycle']));
      await waitServes(P(50), 'cycle\n');
      assert.equal(ok(cli(c, ['port', 'cycle'])), `80/tcp -> 0.0.0.0:${P(50)}\n`);
    }
    assert.match(inspect(d, 'cycle').NetworkSettings.IPAddress, /^10\.200\./, ip);
    ok(d.docker(['rm', '-f', 'cycle']));
    await assert.rejects(fetchText('127.0.0.1', P(50)));
  });

  test('no leaks after 100 runs and removals with ports, half on a user network', async () => {
    const vethsBefore = hostVeths();
    const start = holdings(d, vethsBefore);
    const usrBridge = `br-${JSON.parse(ok(d.berth(['network', 'inspect', 'usr'])))[0].Id.slice(0, 12)}`;
    const macs = () => [d.net.bridge, usrBridge].map((b) => readFileSync(`/sys/class/net/${b}/address`, 'utf8').trim());
    const macsBefore = macs();
    const t0 = Date.now();
    const jobs = Array.from({ length: 100 }, (_, k) => [
      CLIS[k % 2], ['run', '--rm', '-p', '0:80', '-p', `${k % 3 === 0 ? '127.0.0.1::' : ''}81/udp`, ...(k % 4 < 2 ? ['--network', 'usr'] : []), 'busybox', 'true'],
    ] as const);
    const results: RunResult[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < jobs.length) {
        const [c, args] = jobs[next++];
        results.push(await runAsync(d, c, [...args]));
      }
    }));
    const secs = (Date.now() - t0) / 1000;
    const failed = results.filter((r) => r.code !== 0);
    assert.equal(failed.length, 0, failed.slice(0, 3).map((r) => r.stderr).join('\n'));
    assert.ok(secs < 60, `100 runs took ${secs}s`);
    // --rm through docker is the CLI's own remove after the wait: let it settle.
    const deadline = Date.now() + 5000;
    while (ok(d.berth(['ps', '-aq'])).trim().split('\n').length > ok(d.berth(['ps', '-q'])).trim().split('\n').length && Date.now() < deadline) await sleep(100);
    assert.deepEqual(holdings(d, vethsBefore), start);
    assert.equal(ok(d.berth(['ps', '-aq', '--filter', 'status=exited'])).trim(), '');
    // Containers came and went on both bridges: the gateways' MACs stayed put (the long-lived containers' ARP caches stay right).
    assert.deepEqual(macs(), macsBefore);
    assert.equal(ok(d.berth(['exec', 'usr-a', 'nslookup', 'usr-b'])).includes(ipOf(d, 'usr-b', 'usr')), true);
    console.log(`# 100 runs with ports in ${secs.toFixed(1)}s`);
  });

  test('two daemons side by side: each serves, sees only its own networks, and one goes without disturbing the other', async () => {
    const d2 = await TestDaemon.start();
    let cleaned = false;
    try {
      assert.notEqual(d2.net.index, d.net.index);
      importBusybox(d2);
      const P2 = 21000 + d2.net.index * 100;
      ok(d2.docker(['network', 'create', 'second-only']));
      ok(d2.berth(['run', '-d', '--name', 'web2', '--network', 'second-only', '-p', `${P2}:80`, 'busybox', 'sh', '-c', serve('web2')]));
      await waitServes(P2, 'web2\n');
      await waitServes(P(0), 'pub-host\n');
      for (const c of CLIS) {
        const mine = ok(cli(c, ['network', 'ls', '--format', '{{.Name}}'])).trim().split('\n').sort();
        const theirs = ok(c === 'berth' ? d2.berth(['network', 'ls', '--format', '{{.Name}}']) : d2.docker(['network', 'ls', '--format', '{{.Name}}'])).trim().split('\n').sort();
        assert.deepEqual(theirs, ['bridge', 'host', 'none', 'second-only']);
        assert.deepEqual(mine, ['bridge', 'host', 'intl', 'none', 'other', 'usr']);
        assert.equal(ok(c === 'berth' ? d2.berth(['ps', '-q']) : d2.docker(['ps', '-q'])).trim().split('\n').length, 1);
      }
      // The second daemon's port is its own: the first refuses it.
      refused(d.berth(['run', '-d', '-p', `${P2}:80`, 'busybox', 'true']), /port is already allocated/, 'port of the other daemon');
      const leftovers = ok(d.berth(['ps', '-aq', '--filter', 'status=created'])).trim().split('\n').filter(Boolean);
      if (leftovers.length) ok(d.berth(['rm', ...leftovers]));

      ok(d2.berth(['rm', '-f', 'web2']));
      await d2.cleanup();
      cleaned = true;
      const c2 = chainsFor(d2.net.bridge);
      assert.ok(!existsSync(`/sys/class/net/${d2.net.bridge}`));
      assert.doesNotMatch(ok(sh('iptables-save', [])), new RegExp(`\\b${c2.dnat}\\b`));
      await waitServes(P(0), 'pub-host\n');
      assert.equal(ok(d.docker(['exec', 'usr-a', 'timeout', '2', 'wget', '-qO-', 'http://usr-b/'])), 'usr-b\n');
      assert.equal(ok(d.berth(['run', '--rm', 'busybox', 'timeout', '3', 'wget', '-qO-', `http://${outside.ip}/`])), 'outside\n');
    } finally {
      if (!cleaned) {
        for (const id of d2.berth(['ps', '-aq']).stdout.trim().split('\n').filter(Boolean)) d2.berth(['rm', '-f', id]);
        await d2.cleanup();
      }
    }
  });

  test('a bridge that already exists, left with the all-zero MAC when its last port went, is taken over and serves', async () => {
    const d3 = new TestDaemon();
    try {
      // As an older berthd would leave it: a bridge whose last port went, which the kernel leaves with the all-zero MAC.
      const port = `vz${d3.net.index}`;
      ok(sh('ip', ['link', 'add', 'name', d3.net.bridge, 'type', 'bridge']));
      ok(sh('ip', ['link', 'add', port, 'type', 'veth', 'peer', 'name', `${port}p`]));
      ok(sh('ip', ['link', 'set', port, 'master', d3.net.bridge]));
      ok(sh('ip', ['link', 'del', port]));
      assert.equal(readFileSync(`/sys/class/net/${d3.net.bridge}/address`, 'utf8').trim(), '00:00:00:00:00:00');
      await d3.startProcess();
      importBusybox(d3);
      const mac = readFileSync(`/sys/class/net/${d3.net.bridge}/address`, 'utf8').trim();
      assert.notEqual(mac, '00:00:00:00:00:00');
      const P3 = 21050 + d3.net.index * 100;
      ok(d3.berth(['run', '-d', '--name', 'web3', '-p', `127.0.0.1:${P3}:80`, 'busybox', 'sh', '-c', serve('web3')]));
      await waitServes(P3, 'web3\n');
      assert.equal(readFileSync(`/sys/class/net/${d3.net.bridge}/address`, 'utf8').trim(), mac);
      ok(d3.berth(['rm', '-f', 'web3']));
    } finally {
      for (const id of d3.berth(['ps', '-aq']).stdout.trim().split('\n').filter(Boolean)) d3.berth(['rm', '-f', id]);
      await d3.cleanup();
    }
  });

  test('network rm and prune, through both CLIs, once the members are gone', () => {
    ok(d.berth(['rm', '-f', 'intl-a']));
    ok(d.berth(['network', 'rm', 'intl']));
    const other = JSON.parse(ok(d.docker(['network', 'inspect', 'other'])))[0];
    const bridge = other.Options?.['com.docker.network.bridge.name'] || `br-${other.Id.slice(0, 12)}`;
    assert.ok(existsSync(`/sys/class/net/${bridge}`));
    assert.equal(ok(d.docker(['network', 'prune', '-f'])).includes('other'), true);
    assert.ok(!existsSync(`/sys/class/net/${bridge}`));
    assert.deepEqual(ok(d.berth(['network', 'ls', '--format', '{{.Name}}'])).trim().split('\n').sort(), ['bridge', 'host', 'none', 'usr']);
  });
});
