// All traffic in these tests stays on 127.0.0.1: the upstreams are fakes written here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { DnsServer, parseQuery, parseUpstream, readName, reverseAddress, Rcode } from './dns.ts';
import type { DnsAnswerSource } from './dns.ts';
import { silentLogger } from '../common/log.ts';

const HOST = '127.0.0.1';
const A = 1, PTR = 12, MX = 15, AAAA = 28;

function query(id: number, name: string, type: number, flags = 0x0100): Buffer {
  const labels = name.split('.').filter(Boolean).map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(flags, 2);
  head.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(type, 0);
  tail.writeUInt16BE(1, 2);
  return Buffer.concat([head, ...labels, Buffer.from([0]), tail]);
}

interface Answer { type: number; ttl: number; data: string }
function decode(msg: Buffer) {
  const qd = msg.readUInt16BE(4), an = msg.readUInt16BE(6);
  let off = 12;
  let qname = '';
  for (let i = 0; i < qd; i++) {
    const n = readName(msg, off)!;
    qname = n.labels.join('.');
    off = n.end + 4;
  }
  const answers: Answer[] = [];
  for (let i = 0; i < an; i++) {
    off = readName(msg, off)!.end;
    const type = msg.readUInt16BE(off), ttl = msg.readUInt32BE(off + 4), len = msg.readUInt16BE(off + 8);
    const rdata = msg.subarray(off + 10, off + 10 + len);
    const data = type === A ? [...rdata].join('.') : type === PTR ? readName(msg, off + 10)!.labels.join('.') : rdata.toString('hex');
    answers.push({ type, ttl, data });
    off += 10 + len;
  }
  return { id: msg.readUInt16BE(0), flags: msg.readUInt16BE(2), rcode: msg[3] & 0x0f, qname, answers };
}

function ask(port: number, msg: Buffer, wait = 1000): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const timer = setTimeout(() => (s.close(), resolve(undefined)), wait);
    s.on('message', (res) => (clearTimeout(timer), s.close(), resolve(res)));
    s.send(msg, port, HOST);
  });
}

function framed(msg: Buffer): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(msg.length);
  return Buffer.concat([len, msg]);
}

/** Sends the messages over one TCP connection and collects `count` replies. */
function askTcp(port: number, msgs: Buffer[], count = msgs.length): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const c = net.connect(port, HOST, () => c.write(Buffer.concat(msgs.map(framed))));
    let buf = Buffer.alloc(0);
    const out: Buffer[] = [];
    c.on('error', reject);
    c.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        out.push(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (out.length >= count) (c.destroy(), resolve(out));
    });
  });
}

const randomPort = () => 20000 + Math.floor(Math.random() * 40000);

/** A fake upstream on UDP and TCP at one port: answers every query with 10.9.9.9, or SERVFAIL, or not at all. */
async function fakeUpstream(mode: 'answer' | 'servfail' | 'silent') {
  const seen: number[] = [], tcpSeen: number[] = [];
  const answer = (q: Buffer) => {
    seen.push(q.readUInt16BE(0));
    const end = readName(q, 12)!.end + 4;
    const head = Buffer.from(q.subarray(0, 12));
    head.writeUInt16BE(mode === 'servfail' ? 0x8182 : 0x8180, 2);
    head.writeUInt16BE(mode === 'servfail' ? 0 : 1, 6);
    head.writeUInt32BE(0, 8);
    const rr = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 9, 9, 9]);
    return Buffer.concat([head, q.subarray(12, end), mode === 'servfail' ? Buffer.alloc(0) : rr]);
  };
  for (;;) {
    const port = randomPort();
    const udp = dgram.createSocket('udp4');
    const tcp = net.createServer((c) => {
      c.on('data', (d) => {
        const q = d.subarray(2);
        tcpSeen.push(q.readUInt16BE(0));
        if (mode !== 'silent') c.write(framed(answer(q)));
        else seen.push(q.readUInt16BE(0));
      });
    });
    try {
      await new Promise<void>((res, rej) => (udp.once('error', rej), udp.bind(port, HOST, () => res())));
      await new Promise<void>((res, rej) => (tcp.once('error', rej), tcp.listen(port, HOST, () => res())));
    } catch {
      udp.close();
      continue;
    }
    udp.on('message', (q, from) => {
      if (mode === 'silent') seen.push(q.readUInt16BE(0));
      else udp.send(answer(q), from.port, from.address);
    });
    const close = () => new Promise<void>((r) => udp.close(() => tcp.close(() => r())));
    return { addr: `${HOST}:${port}`, seen, tcpSeen, close };
  }
}

let upstreams: string[] = [];
const calls: { local: string; client?: string }[] = [];
const source: DnsAnswerSource = {
  lookup(local, name, type) {
    calls.push({ local });
    if (name === 'web' || name === 'web.mynet') return type === 'A' ? ['172.18.0.2'] : [];
    if (name === 'dual') return type === 'A' ? ['172.18.0.3', 'bogus'] : ['fd00::3', '::ffff:1.2.3.4'];
    if (name === 'many') return type === 'A' ? Array.from({ length: 100 }, (_, i) => `10.0.0.${i}`) : [];
    return undefined;
  },
  reverse(_local, ip) {
    if (ip === '172.18.0.2') return ['web.mynet'];
    if (ip === 'fd00::3') return ['dual.mynet'];
    return undefined;
  },
  upstreams(local, client) {
    calls.push({ local, client });
    return upstreams;
  },
};

async function startServer(server: DnsServer): Promise<number> {
  for (;;) {
    const port = randomPort();
    try {
      await server.listen(HOST, port);
      return port;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    }
  }
}

const server = new DnsServer(source, silentLogger, { upstreamTimeoutMs: 300, tcpIdleMs: 300, maxPending: 3 });
const port = await startServer(server);
after(() => server.closeAll());

test('answers A from the source with TTL 600, echoing the question as asked', async () => {
  const r = decode((await ask(port, query(0x1234, 'WeB', A)))!);
  assert.equal(r.id, 0x1234);
  assert.equal(r.rcode, Rcode.noError);
  assert.equal(r.flags & 0x8180, 0x8180); // QR, RD copied, RA
  assert.equal(r.qname, 'WeB');
  assert.deepEqual(r.answers, [{ type: A, ttl: 600, data: '172.18.0.2' }]);
  assert.equal(calls.at(-1)!.local, HOST);
});

test('a known name without an address of the asked type is NOERROR with no answers', async () => {
  const r = decode((await ask(port, query(7, 'web.mynet.', AAAA)))!);
  assert.equal(r.rcode, Rcode.noError);
  assert.deepEqual(r.answers, []);
});

test('AAAA answers, and invalid addresses from the source are skipped', async () => {
  const six = decode((await ask(port, query(8, 'dual', AAAA)))!);
  assert.deepEqual(six.answers.map((a) => a.data), ['fd000000000000000000000000000003', '00000000000000000000ffff01020304']);
  const four = decode((await ask(port, query(9, 'dual', A)))!);
  assert.deepEqual(four.answers.map((a) => a.data), ['172.18.0.3']);
});

test('PTR for in-addr.arpa and ip6.arpa names', async () => {
  const r = decode((await ask(port, query(10, '2.0.18.172.in-addr.arpa', PTR)))!);
  assert.deepEqual(r.answers, [{ type: PTR, ttl: 600, data: 'web.mynet' }]);
  const v6 = '3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa';
  assert.deepEqual(decode((await ask(port, query(11, v6, PTR)))!).answers.map((a) => a.data), ['dual.mynet']);
});

test('a UDP answer too long for 512 bytes is truncated with TC; TCP gets all of it', async () => {
  const udp = (await ask(port, query(12, 'many', A)))!;
  assert.ok(udp.length <= 512);
  assert.ok(udp.readUInt16BE(2) & 0x0200);
  const [tcp] = await askTcp(port, [query(12, 'many', A)]);
  assert.equal(decode(tcp).answers.length, 100);
  assert.equal(tcp.readUInt16BE(2) & 0x0200, 0);
});

test('forwards unknown names and other types upstream, keeping the client query ID', async () => {
  const up = await fakeUpstream('answer');
  upstreams = [up.addr];
  try {
    const r = decode((await ask(port, query(0xbeef, 'example.com', A)))!);
    assert.equal(r.id, 0xbeef);
    assert.deepEqual(r.answers.map((a) => a.data), ['10.9.9.9']);
    assert.deepEqual(up.seen, [0xbeef]);
    const mx = decode((await ask(port, query(0xbee0, 'web', MX)))!); // a known name, but not a type we answer
    assert.equal(mx.id, 0xbee0);
    assert.equal(up.seen.length, 2);
    assert.deepEqual(calls.at(-1), { local: HOST, client: HOST });
  } finally {
    await up.close();
  }
});

test('a silent or failing upstream is skipped for the next; all failing gives SERVFAIL', async () => {
  const silent = await fakeUpstream('silent'), failing = await fakeUpstream('servfail'), good = await fakeUpstream('answer');
  try {
    upstreams = [silent.addr, failing.addr, good.addr];
    const t0 = Date.now();
    const r = decode((await ask(port, query(21, 'example.org', A), 3000))!);
    assert.deepEqual(r.answers.map((a) => a.data), ['10.9.9.9']);
    assert.ok(Date.now() - t0 >= 250);
    assert.deepEqual([silent.seen, failing.seen, good.seen], [[21], [21], [21]]);

    upstreams = [silent.addr, failing.addr];
    const f = decode((await ask(port, query(22, 'example.org', A), 3000))!);
    assert.equal(f.id, 22);
    assert.equal(f.rcode, Rcode.servFail);
    assert.equal(f.qname, 'example.org');

    upstreams = [];
    assert.equal(decode((await ask(port, query(23, 'example.org', A)))!).rcode, Rcode.servFail);
    upstreams = ['not an address', `${HOST}:${port}`]; // unusable, and ourselves: never forwarded to
    assert.equal(decode((await ask(port, query(24, 'example.org', A)))!).rcode, Rcode.servFail);
  } finally {
    await Promise.all([silent.close(), failing.close(), good.close()]);
  }
});

test('a slow upstream does not hold up other answers; forwards beyond the bound are dropped', async () => {
  const silent = await fakeUpstream('silent');
  upstreams = [silent.addr];
  try {
    const slow = [1, 2, 3, 4].map((i) => ask(port, query(30 + i, `slow${i}.example`, A), 1500));
    const t0 = Date.now();
    const fast = decode((await ask(port, query(40, 'web', A)))!);
    assert.deepEqual(fast.answers.map((a) => a.data), ['172.18.0.2']);
    assert.ok(Date.now() - t0 < 250);
    const results = await Promise.all(slow);
    assert.equal(results.filter((r) => r === undefined).length, 1); // maxPending is 3
    for (const r of results) if (r) assert.equal(decode(r).rcode, Rcode.servFail);
  } finally {
    await silent.close();
  }
});

test('TCP: several length-prefixed queries on one connection, forwarding over TCP', async () => {
  const up = await fakeUpstream('answer');
  upstreams = [up.addr];
  try {
    const replies = (await askTcp(port, [query(50, 'web', A), query(51, 'example.net', A)])).map(decode);
    replies.sort((a, b) => a.id - b.id);
    assert.deepEqual(replies.map((r) => [r.id, r.answers[0].data]), [[50, '172.18.0.2'], [51, '10.9.9.9']]);
    assert.deepEqual(up.tcpSeen, [51]);
  } finally {
    await up.close();
  }
});

test('TCP: idle connections are closed', async () => {
  const c = net.connect(port, HOST);
  const t0 = Date.now();
  await new Promise((r) => c.on('close', r));
  assert.ok(Date.now() - t0 >= 250);
});

test('malformed packets are dropped or answered FORMERR, and the server keeps answering', async () => {
  const head = (id: number, qd = 1) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(id, 0);
    h.writeUInt16BE(qd, 4);
    return h;
  };
  const typeClass = Buffer.from([0, 1, 0, 1]);
  assert.equal(await ask(port, Buffer.from([1, 2, 3, 4, 5]), 200), undefined); // shorter than a header
  const cases: [string, Buffer][] = [
    ['label past the end', Buffer.concat([head(60), Buffer.from([0x3f, 0x61, 0x62])])],
    ['pointer to itself', Buffer.concat([head(61), Buffer.from([0xc0, 0x0c]), typeClass])],
    ['pointer loop', Buffer.concat([head(62), Buffer.from([1, 0x61, 0xc0, 0x0c]), typeClass])],
    ['pointer past the end', Buffer.concat([head(63), Buffer.from([0xff, 0xff]), typeClass])],
    ['no type and class', Buffer.concat([head(64), Buffer.from([1, 0x61, 0])])],
    ['no question', head(65, 0)],
    ['name over 255 bytes', Buffer.concat([head(66), ...Array(5).fill(Buffer.concat([Buffer.from([63]), Buffer.alloc(63, 0x61)])), Buffer.from([0]), typeClass])],
  ];
  for (const [what, msg] of cases) {
    const r = await ask(port, msg);
    assert.ok(r, what);
    assert.equal(r.readUInt16BE(0), msg.readUInt16BE(0), what);
    assert.equal(r[3] & 0x0f, Rcode.formErr, what);
  }
  const response = query(67, 'web', A, 0x8100);
  assert.equal(await ask(port, response, 200), undefined); // responses are never answered
  assert.equal(decode((await ask(port, query(68, 'web', A, 0x2900)))!).rcode, Rcode.notImp); // opcode UPDATE

  // Random garbage, with and without a plausible header.
  const s = dgram.createSocket('udp4');
  for (let i = 0; i < 500; i++) {
    const junk = Buffer.from(Array.from({ length: Math.floor(Math.random() * 64) }, () => Math.floor(Math.random() * 256)));
    if (i % 2 && junk.length >= 12) junk.writeUInt16BE(0x0100, 2), junk.writeUInt16BE(1, 4);
    assert.doesNotThrow(() => parseQuery(junk));
    s.send(junk, port, HOST);
  }
  await new Promise((r) => setTimeout(r, 100));
  s.close();
  const tcpJunk = await new Promise<void>((resolve) => {
    const c = net.connect(port, HOST, () => c.end(Buffer.from([0, 3, 1, 2, 3, 0, 0])));
    c.on('error', () => {});
    c.on('close', () => resolve());
  });
  assert.equal(tcpJunk, undefined);
  assert.deepEqual(decode((await ask(port, query(69, 'web', A)))!).answers.map((a) => a.data), ['172.18.0.2']);
});

test('readName follows backward pointers and refuses loops', () => {
  const msg = Buffer.concat([Buffer.alloc(12), Buffer.from([1, 0x61, 0]), Buffer.from([1, 0x62, 0xc0, 0x0c]), Buffer.from([1, 0x63, 0xc0, 0x13])]);
  assert.deepEqual(readName(msg, 15), { labels: ['b', 'a'], end: 19 });
  assert.deepEqual(readName(msg, 19), undefined); // points at its own start
  const twoHop = Buffer.concat([Buffer.alloc(12), Buffer.from([0xc0, 0x0e, 0xc0, 0x0c])]);
  assert.equal(readName(twoHop, 14), undefined);
  assert.equal(readName(twoHop, 12), undefined);
});

test('reverse names and upstream addresses parse', () => {
  assert.equal(reverseAddress('4.3.2.1.in-addr.arpa'), '1.2.3.4');
  assert.equal(reverseAddress('3.2.1.in-addr.arpa'), undefined);
  assert.equal(reverseAddress('400.3.2.1.in-addr.arpa'), undefined);
  assert.equal(reverseAddress('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa'), '::1');
  assert.equal(reverseAddress('0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.0.0.8.b.d.0.ip6.arpa'), 'db8:0:1::');
  assert.deepEqual(parseUpstream('1.2.3.4'), { host: '1.2.3.4', port: 53 });
  assert.deepEqual(parseUpstream('1.2.3.4:5353'), { host: '1.2.3.4', port: 5353 });
  assert.deepEqual(parseUpstream('[::1]:54'), { host: '::1', port: 54 });
  assert.deepEqual(parseUpstream('fe80::1'), { host: 'fe80::1', port: 53 });
  assert.equal(parseUpstream('1.2.3.4:99999'), undefined);
  assert.equal(parseUpstream('dns.google'), undefined);
});

test('listen is idempotent per address; close and listening track it', async () => {
  const s = new DnsServer(source, silentLogger);
  const p = await startServer(s);
  await s.listen(HOST, p);
  assert.deepEqual(s.listening(), [HOST]);
  await s.close(HOST);
  assert.deepEqual(s.listening(), []);
  assert.equal(await ask(p, query(1, 'web', A), 200), undefined);
});

test('a source that throws gives SERVFAIL, not a dead daemon', async () => {
  const s = new DnsServer({ ...source, lookup: () => { throw new Error('boom'); } }, silentLogger);
  const p = await startServer(s);
  try {
    assert.equal(decode((await ask(p, query(1, 'web', A)))!).rcode, Rcode.servFail);
  } finally {
    await s.closeAll();
  }
});
