import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyChanges } from './changes.ts';

test('applies Dockerfile-style changes', () => {
  const c = applyChanges({ Env: ['PATH=/bin'] }, [
    'CMD ["sh", "-c", "echo hi"]',
    'ENTRYPOINT /bin/init --x',
    'ENV A=1 B="two words"',
    'ENV PATH /usr/bin:/bin',
    'LABEL org.x=y',
    'EXPOSE 80 53/udp',
    'VOLUME ["/data"]',
    'WORKDIR /srv',
    'USER 1000:1000',
    'STOPSIGNAL SIGINT',
    'HEALTHCHECK CMD wget -q localhost',
  ]);
  assert.deepEqual(c.Cmd, ['sh', '-c', 'echo hi']);
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c', '/bin/init --x']);
  assert.deepEqual(c.Env, ['PATH=/usr/bin:/bin', 'A=1', 'B=two words']);
  assert.deepEqual(c.Labels, { 'org.x': 'y' });
  assert.deepEqual(c.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  assert.deepEqual(c.Volumes, { '/data': {} });
  assert.equal(c.WorkingDir, '/srv');
  assert.equal(c.User, '1000:1000');
  assert.equal(c.StopSignal, 'SIGINT');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'wget -q localhost'] });
});

test('refuses instructions import cannot take', () => {
  assert.throws(() => applyChanges({}, ['RUN rm -rf /']), /RUN is not a valid change command/);
  assert.throws(() => applyChanges({}, ['EXPOSE eighty']), /invalid containerPort/);
});
