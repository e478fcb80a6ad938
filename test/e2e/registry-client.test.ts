// berth's registry client end to end: login, logout and search through berthd (berth's CLI and
// the real docker CLI), credential helpers, and the fat-manifest workflow against Debian's
// docker-registry on 127.0.0.1.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { TestDaemon, busyboxRootfs } from '../helpers/daemon.ts';
import { TestRegistry } from '../helpers/registry.ts';
import { sha256 } from '../../src/common/digest.ts';
import { createRegistryClient } from '../../src/distribution/client.ts';
import { parseReference } from '../../src/images/reference.ts';

const PASSWORD = 'Tr0ub4dor&3-secret';

describe('registry client through berth and docker', () => {
  let d: TestDaemon;
  let open: TestRegistry;
  let locked: TestRegistry;
  let cfgDir: string;
  let env: Record<string, string>;
  before(async () => {
    [d, open, locked] = await Promise.all([TestDaemon.start(), TestRegistry.start(), TestRegistry.start({ users: { alice: PASSWORD } })]);
    cfgDir = mkdtempSync(join(tmpdir(), 'berth-docker-config-'));
    env = { DOCKER_CONFIG: cfgDir };
  });
  after(async () => {
    await Promise.all([d?.cleanup(), open?.cleanup(), locked?.cleanup()]);
    rmSync(cfgDir, { recursive: true, force: true });
  });
  const config = () => JSON.parse(readFileSync(join(cfgDir, 'config.json'), 'utf8')) as { auths?: Record<string, { auth?: string }>; credsStore?: string };

  test('berth login through berthd stores the credentials as docker does; logout removes them', () => {
    const r = d.berth(['login', '-u', 'alice', '--password-stdin', locked.host], { input: `${PASSWORD}\n`, env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Login Succeeded\n');
    assert.match(r.stderr, /WARNING! Your credentials are stored unencrypted/);
    assert.equal(config().auths?.[locked.host]?.auth, Buffer.from(`alice:${PASSWORD}`).toString('base64'));
    assert.ok(!d.log.includes(PASSWORD), 'berthd logged no password');

    const out = d.berth(['logout', locked.host], { env });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, `Removing login credentials for ${locked.host}\n`);
    assert.equal(config().auths?.[locked.host], undefined);
    assert.equal(d.berth(['logout', locked.host], { env }).stdout, `Not logged in to ${locked.host}\n`);
  });

  test('wrong credentials: Docker\'s 401 text, exit 1, nothing stored, no password shown', () => {
    const before = existsSync(join(cfgDir, 'config.json')) ? readFileSync(join(cfgDir, 'config.json'), 'utf8') : '';
    const r = d.berth(['login', '-u', 'alice', '-p', 'wrong-' + PASSWORD, locked.host], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /WARNING! Using --password via the CLI is insecure. Use --password-stdin./);
    assert.match(r.stderr, new RegExp(`Error response from daemon: login attempt to https?://${locked.host.replace(/\./g, '\\.')}/v2/ failed with status: 401 Unauthorized`));
    assert.ok(!r.stderr.includes('wrong-' + PASSWORD) && !d.log.includes('wrong-' + PASSWORD));
    assert.equal(existsSync(join(cfgDir, 'config.json')) ? readFileSync(join(cfgDir, 'config.json'), 'utf8') : '', before);
    const usage = d.berth(['login', '--password-stdin', locked.host], { input: PASSWORD, env });
    assert.equal(usage.code, 1);
    assert.match(usage.stderr, /Must provide --username with --password-stdin/);
  });

  test('docker login --password-stdin against berthd (POST /auth)', () => {
    const r = d.docker(['login', '-u', 'alice', '--password-stdin', locked.host], { input: PASSWORD, env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Login Succeeded/);
    assert.equal(config().auths?.[locked.host]?.auth, Buffer.from(`alice:${PASSWORD}`).toString('base64'));
    const bad = d.docker(['login', '-u', 'alice', '--password-stdin', locked.host], { input: 'nope', env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Error response from daemon: login attempt to .*\/v2\/ failed with status: 401 Unauthorized/);
    assert.equal(d.docker(['logout', locked.host], { env }).code, 0);
    assert.equal(config().auths?.[locked.host], undefined);
  });

  test('a credsStore helper holds the secret; config.json only names the registry', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cred-helper-'));
    try {
      const db = join(dir, 'db.json');
      mkdirSync(join(dir, 'bin'));
      const helper = join(dir, 'bin', 'docker-credential-test');
      // A helper speaking the docker credential-helper protocol, keeping secrets in db.json.
      writeFileSync(helper, `#!/bin/sh
exec ${process.execPath} -e '
const fs = require("fs"); const db = ${JSON.stringify(db)};
const all = fs.existsSync(db) ? JSON.parse(fs.readFileSync(db, "utf8")) : {};
const input = fs.readFileSync(0, "utf8").trim();
const miss = () => { process.stdout.write("credentials not found in native keychain\\n"); process.exit(1); };
switch (process.argv[1]) {
  case "store": { const c = JSON.parse(input); all[c.ServerURL] = c; fs.writeFileSync(db, JSON.stringify(all)); break; }
  case "get": if (!all[input]) miss(); process.stdout.write(JSON.stringify(all[input])); break;
  case "erase": if (!all[input]) miss(); delete all[input]; fs.writeFileSync(db, JSON.stringify(all)); break;
  case "list": process.stdout.write(JSON.stringify(Object.fromEntries(Object.entries(all).map(([k, v]) => [k, v.Username])))); break;
  default: process.exit(2);
}' "$1"
`);
      chmodSync(helper, 0o755);
      const hcfg = join(dir, 'config');
      mkdirSync(hcfg);
      writeFileSync(join(hcfg, 'config.json'), JSON.stringify({ credsStore: 'test' }));
      const henv = { DOCKER_CONFIG: hcfg, PATH: `${join(dir, 'bin')}:${process.env.PATH}` };
      const r = d.berth(['login', '-u', 'alice', '--password-stdin', locked.host], { input: PASSWORD, env: henv });
      assert.equal(r.code, 0, r.stderr);
      assert.doesNotMatch(r.stderr, /unencrypted/);
      const text = readFileSync(join(hcfg, 'config.json'), 'utf8');
      assert.ok(!text.includes(PASSWORD) && !text.includes(Buffer.from(`alice:${PASSWORD}`).toString('base64')));
      assert.deepEqual(JSON.parse(text).auths, { [locked.host]: {} });
      assert.deepEqual(JSON.parse(readFileSync(db, 'utf8'))[locked.host], { ServerURL: locked.host, Username: 'alice', Secret: PASSWORD });
      // berth login with no -u uses what the helper holds, as docker does.
      const again = d.berth(['login', locked.host], { env: henv });
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /Authenticating with existing credentials...\nLogin Succeeded\n/);
      const out = d.berth(['logout', locked.host], { env: henv });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(JSON.parse(readFileSync(db, 'utf8')), {});
      assert.deepEqual(JSON.parse(readFileSync(join(hcfg, 'config.json'), 'utf8')).auths, {});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('search names a registry; a bare term is refused instead of asking docker.io', async () => {
    const c = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined });
    const seed = c.repository(parseReference(`${open.host}/tools/searchme:v1`), ['pull', 'push']);
    const blob = Buffer.from('{}');
    await seed.pushBlob({ mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(blob), size: 2 }, () => Readable.from([blob]));
    await seed.putManifest('v1', Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(blob), size: 2 }, layers: [] })), 'application/vnd.oci.image.manifest.v1+json');
    for (const cli of ['berth', 'docker'] as const) {
      const run = (args: string[]) => (cli === 'berth' ? d.berth(args, { env }) : d.docker(args, { env }));
      const r = run(['search', `${open.host}/searchme`]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL$/, cli);
      assert.match(lines[1], /^tools\/searchme\s+0\s*$/, cli);
      assert.equal(run(['search', '--format', '{{.Name}}', `${open.host}/search`]).stdout, 'tools/searchme\n');
      for (const term of ['busybox', 'docker.io/library/busybox', 'index.docker.io/busybox']) {
        const bare = run(['search', term]);
        assert.equal(bare.code, 1, term);
        assert.match(bare.stderr, /berth has no default search index: name the registry to search in the term/, term);
      }
    }
  });

  describe('manifest lists', () => {
    const digests: Record<string, string> = {};
    before(() => {
      // Two single-platform busybox images, imported into berthd, saved, and copied to the registry with skopeo.
      for (const arch of ['amd64', 'arm64'] as const) {
        let r = d.berth(['import', '--platform', `linux/${arch}`, busyboxRootfs(arch), `bb:${arch}`]);
        assert.equal(r.code, 0, r.stderr);
        r = d.berth(['save', '-o', join(d.dir, `bb-${arch}.tar`), `bb:${arch}`]);
        assert.equal(r.code, 0, r.stderr);
        digests[arch] = open.push(join(d.dir, `bb-${arch}.tar`), `bb:${arch}`);
      }
    });
    const list = () => `${open.host}/bb:multi`;
    const berth = (args: string[]) => d.berth(['manifest', ...args], { env });

    test('create, annotate, inspect, push and rm a two-platform list; docker sees the same', async () => {
      let r = berth(['create', list(), `${open.host}/bb:amd64`, `${open.host}/bb:arm64`]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `Created manifest list ${list()}\n`);
      r = berth(['create', list(), `${open.host}/bb:amd64`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /refusing to amend an existing manifest list with no --amend flag/);
      assert.equal(berth(['annotate', '--variant', 'v8', list(), `${open.host}/bb:arm64`]).code, 0);
      r = berth(['annotate', '--arch', 'nonsense', list(), `${open.host}/bb:arm64`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /unsupported os\/arch combination: linux\/nonsense/);

      const local = berth(['inspect', list()]);
      assert.equal(local.code, 0, local.stderr);
      const shown = JSON.parse(local.stdout);
      assert.equal(shown.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
      assert.deepEqual(shown.manifests.map((m: { digest: string; platform: object }) => [m.digest, m.platform]), [
        [digests.amd64, { architecture: 'amd64', os: 'linux' }],
        [digests.arm64, { architecture: 'arm64', os: 'linux', variant: 'v8' }],
      ]);
      // docker reads the list berth keeps under DOCKER_CONFIG/manifests and prints it the same way.
      const dockerLocal = d.docker(['manifest', 'inspect', list()], { env });
      assert.equal(dockerLocal.code, 0, dockerLocal.stderr);
      assert.equal(dockerLocal.stdout, local.stdout);

      const pushed = berth(['push', list()]);
      assert.equal(pushed.code, 0, pushed.stderr);
      const digest = pushed.stdout.trim();
      assert.match(digest, /^sha256:[a-f0-9]{64}$/);
      // The digest printed is the digest of the bytes the registry serves.
      const repo = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined }).repository(parseReference(list()), ['pull']);
      const fetched = await repo.getManifest('multi');
      assert.equal(sha256(fetched.bytes), digest);
      assert.equal(fetched.digest, digest);

      const remoteBerth = berth(['inspect', '--insecure', list()]);
      const remoteDocker = d.docker(['manifest', 'inspect', '--insecure', list()], { env });
      assert.equal(remoteDocker.code, 0, remoteDocker.stderr);
      assert.equal(remoteBerth.stdout, local.stdout, 'the pushed list is the list that was made');
      assert.equal(remoteDocker.stdout, remoteBerth.stdout);
      // Verbose shows each image's platform and the digest of the list's entries.
      const verbose = JSON.parse(berth(['inspect', '-v', '--insecure', list()]).stdout) as { Descriptor: { digest: string } }[];
      assert.deepEqual(verbose.map((m) => m.Descriptor.digest), [digests.amd64, digests.arm64]);

      r = berth(['rm', list()]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(readdirSync(join(cfgDir, 'manifests')), []);
      r = berth(['rm', list()]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, new RegExp(`No such manifest: ${list().replace(/\./g, '\\.')}`));
    });

    test('an image of another repository is mounted across and put by digest; --amend and --purge', async () => {
      const target = `${open.host}/other/bb:multi`;
      let r = berth(['create', target, `${open.host}/bb:amd64`]);
      assert.equal(r.code, 0, r.stderr);
      r = berth(['create', '--amend', target, `${open.host}/bb:arm64`]);
      assert.equal(r.code, 0, r.stderr);
      r = berth(['push', '--purge', target]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!existsSync(join(cfgDir, 'manifests', `${open.host.replace(':', '-')}_other_bb-multi`)), '--purge removed the local list');
      const repo = createRegistryClient({ insecure: [], mirrors: [], credentials: () => undefined }).repository(parseReference(target), ['pull']);
      const list = JSON.parse((await repo.getManifest('multi')).bytes.toString()) as { manifests: { digest: string }[] };
      assert.deepEqual(list.manifests.map((m) => m.digest).sort(), [digests.amd64, digests.arm64].sort());
      for (const m of list.manifests) assert.equal((await repo.getManifest(m.digest)).digest, m.digest, 'each image is in the target repository');
      const dockerSees = d.docker(['manifest', 'inspect', '--insecure', `${target.replace(':multi', '')}@${digests.arm64}`], { env });
      assert.equal(dockerSees.code, 0, dockerSees.stderr);
      assert.equal(JSON.parse(dockerSees.stdout).config.mediaType, 'application/vnd.docker.container.image.v1+json');
    });

    test('docker and berth share the manifests/ store: docker creates, berth pushes, every inspect form prints the same', () => {
      const made = `${open.host}/bb:bydocker`;
      const r = d.docker(['manifest', 'create', '--insecure', made, `${open.host}/bb:amd64`, `${open.host}/bb:arm64`], { env });
      assert.equal(r.code, 0, r.stderr);
      for (const args of [[made], ['-v', made], [made, `${open.host}/bb:arm64`], ['--insecure', `${open.host}/bb:amd64`], ['-v', '--insecure', `${open.host}/bb:amd64`]]) {
        const b = berth(['inspect', ...args]);
        const k = d.docker(['manifest', 'inspect', ...args], { env });
        assert.equal(k.code, 0, k.stderr);
        assert.equal(b.code, 0, b.stderr);
        assert.equal(b.stdout, k.stdout, `manifest inspect ${args.join(' ')}`);
      }
      const pushed = berth(['push', '--purge', made]);
      assert.equal(pushed.code, 0, pushed.stderr);
      const b = berth(['inspect', '-v', '--insecure', made]);
      const k = d.docker(['manifest', 'inspect', '-v', '--insecure', made], { env });
      assert.equal(k.code, 0, k.stderr);
      assert.equal(b.stdout, k.stdout, 'the remote list, verbose');
      assert.equal(JSON.parse(b.stdout)[1].Descriptor.digest, digests.arm64);
    });

    test('a list made of a list is refused, and nothing is written', () => {
      const r = berth(['create', `${open.host}/bb:nested`, `${open.host}/bb:multi`]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is a manifest list/);
      assert.ok(!existsSync(join(cfgDir, 'manifests', `${open.host.replace(':', '-')}_bb-nested`)));
    });
  });
});
