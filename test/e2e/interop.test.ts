import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestDaemon, busyboxRootfs, hostArch, importBusybox, run } from '../helpers/daemon.ts';

/** skopeo (Debian's, from containers/image) is an independent reader and writer of both archive formats. */
describe('archives interoperate with skopeo', () => {
  let d: TestDaemon;
  let layers: string;
  before(async () => {
    d = await TestDaemon.start();
    importBusybox(d, 'busybox:latest', ['CMD ["sh"]', 'ENV FROM=berth']);
    layers = d.berth(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'busybox']).stdout.trim();
  });
  after(async () => {
    await d.cleanup();
  });

  test('skopeo reads what berth save writes', () => {
    const tar = join(d.dir, 'saved.tar');
    assert.equal(d.berth(['save', '-o', tar, 'busybox']).code, 0);
    // Addressed by the tag recorded in manifest.json, so the archive's names are right too.
    const info = JSON.parse(execFileSync('skopeo', ['inspect', `docker-archive:${tar}:busybox:latest`], { encoding: 'utf8' }));
    assert.equal(JSON.stringify(info.Layers), layers);
    assert.deepEqual(info.Env, ['FROM=berth']);
    assert.equal(info.Architecture, hostArch());
  });

  test('berth loads an OCI layout and a classic docker-archive that skopeo wrote', () => {
    const saved = join(d.dir, 'src.tar');
    assert.equal(d.berth(['save', '-o', saved, 'busybox']).code, 0);
    const oci = join(d.dir, 'oci');
    execFileSync('skopeo', ['copy', '-q', `docker-archive:${saved}`, `oci:${oci}:example.com/skopeo/bb:oci`]);
    const ociTar = join(d.dir, 'oci.tar');
    execFileSync('tar', ['-C', oci, '-cf', ociTar, '.']);
    const r = d.berth(['load', '-i', ociTar]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'Loaded image: example.com/skopeo/bb:oci');
    assert.equal(d.berth(['image', 'inspect', '--format', '{{json .RootFS.Layers}} {{json .Config.Env}}', 'example.com/skopeo/bb:oci']).stdout.trim(), `${layers} ["FROM=berth"]`);

    const classic = join(d.dir, 'classic.tar');
    execFileSync('skopeo', ['copy', '-q', `oci:${oci}:example.com/skopeo/bb:oci`, `docker-archive:${classic}:skopeo/classic:v1`]);
    const r2 = d.docker(['load', '-i', classic]);
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stdout.trim(), 'Loaded image: skopeo/classic:v1');
    assert.equal(d.berth(['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'skopeo/classic:v1']).stdout.trim(), layers);
  });

  test('an arm64 rootfs from busybox-static:arm64 imports as an arm64 image', () => {
    const r = d.berth(['import', '--platform', 'linux/arm64', '--change', 'CMD ["sh"]', busyboxRootfs('arm64'), 'busybox:arm64']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(d.docker(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', 'busybox:arm64']).stdout.trim(), 'linux/arm64');
    const tar = join(d.dir, 'arm.tar');
    assert.equal(d.berth(['save', '-o', tar, 'busybox:arm64']).code, 0);
    const listing = execFileSync('tar', ['-xOf', tar, 'manifest.json'], { encoding: 'utf8' });
    const layer = JSON.parse(listing)[0].Layers[0] as string;
    const files = execFileSync('sh', ['-c', `tar -xOf ${tar} ${layer} | tar -tvf - ./bin/busybox`], { encoding: 'utf8' });
    assert.match(files, /bin\/busybox/);
    const elf = execFileSync('sh', ['-c', `tar -xOf ${tar} ${layer} | tar -xOf - ./bin/busybox | head -c 20 | od -An -tx1`], { encoding: 'utf8' });
    assert.match(elf.replace(/\s+/g, ' '), /7f 45 4c 46 02 01 01 .* b7 00/, 'an ELF for machine 0xb7 (aarch64)');
  });
});

describe('the CLI finds its daemon as docker does', () => {
  let d: TestDaemon;
  before(async () => {
    d = await TestDaemon.start();
  });
  after(async () => {
    await d.cleanup();
  });

  test('-H beats BERTH_HOST, which beats DOCKER_HOST', () => {
    const bogus = 'unix:///nonexistent/berth.sock';
    const ok = `unix://${d.socket}`;
    const berth = join(import.meta.dirname, '..', '..', 'bin', 'berth');
    const env = (o: Record<string, string>) => ({ env: { BERTH_HOST: '', DOCKER_HOST: '', ...o } });
    assert.equal(run(berth, ['-H', ok, 'version', '--format', '{{.Server.Version}}'], env({ BERTH_HOST: bogus, DOCKER_HOST: bogus })).code, 0);
    assert.equal(run(berth, ['version', '--format', '{{.Server.Version}}'], env({ BERTH_HOST: ok, DOCKER_HOST: bogus })).code, 0);
    assert.equal(run(berth, ['version', '--format', '{{.Server.Version}}'], env({ DOCKER_HOST: ok })).code, 0);
    const miss = run(berth, ['images'], env({ BERTH_HOST: bogus, DOCKER_HOST: ok }));
    assert.equal(miss.code, 1);
    assert.match(miss.stderr, /Cannot connect to the berth daemon at unix:\/\/\/nonexistent\/berth.sock/);
  });

  test('system prune removes dangling images and reports the space', () => {
    const id = importBusybox(d, 'keep:1');
    const dangling = d.berth(['import', '--change', 'ENV X=dangling', busyboxRootfs()]).stdout.trim();
    const r = d.docker(['system', 'prune', '-f']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`deleted: ${dangling}`));
    assert.match(r.stdout, /Total reclaimed space: [1-9]/);
    assert.equal(d.berth(['images', '-q', '--no-trunc']).stdout.trim(), id);
    writeFileSync(join(d.dir, 'noop'), '');
    const again = d.berth(['system', 'prune', '-f']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Total reclaimed space: 0B/);
  });
});
