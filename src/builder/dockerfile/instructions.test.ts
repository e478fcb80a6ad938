import { test } from 'node:test';
import assert from 'node:assert/strict';
import { heredocForSource, parseDockerfile, parseGoDuration, parseTriggers, parseWords, resolveMount, runInvocation } from './instructions.ts';
import { DockerfileError, type Command } from './types.ts';

/** The commands of a one-stage Dockerfile `FROM x` + body. */
function commands(body: string): Command[] {
  return parseDockerfile('FROM x\n' + body).stages[0].commands;
}
/** The member of Command whose kind (maybe a union such as CMD | ENTRYPOINT) includes K. */
type KindOf<C, K> = C extends { kind: infer X } ? (K extends X ? C : never) : never;
function only<K extends Command['kind']>(body: string, kind: K): KindOf<Command, K> {
  const [c] = commands(body);
  assert.equal(c.kind, kind);
  return c as KindOf<Command, K>;
}
/** Asserts a DockerfileError on `line` whose text ends with `message`. */
function fails(text: string, line: number, message: string) {
  assert.throws(
    () => parseDockerfile(text),
    (e: unknown) => {
      assert.ok(e instanceof DockerfileError, String(e));
      assert.equal(e.message, `dockerfile parse error on line ${line}: ${message}`);
      assert.equal(e.line, line);
      return true;
    },
  );
}

test('stages split at FROM with AS names (lower-cased) and --platform', () => {
  const df = parseDockerfile('FROM golang:1.22 AS Build\nRUN go build\nfrom --platform=linux/arm64 scratch as out\nCOPY --from=build /a /a\nFROM alpine\n');
  assert.equal(df.stages.length, 3);
  assert.deepEqual(df.stages.map((s) => [s.index, s.name, s.base, s.platform]), [
    [0, 'build', 'golang:1.22', undefined],
    [1, 'out', 'scratch', 'linux/arm64'],
    [2, undefined, 'alpine', undefined],
  ]);
  assert.deepEqual(df.stages[0].from, { line: 1, endLine: 1, original: 'FROM golang:1.22 AS Build' });
  assert.equal(df.stages[1].commands[0].kind, 'COPY');
});

test('FROM argument errors', () => {
  fails('FROM\n', 1, 'FROM requires either one or three arguments');
  fails('FROM a b\n', 1, 'FROM requires either one or three arguments');
  fails('FROM a TO b\n', 1, 'FROM requires either one or three arguments');
  fails('FROM a AS 1st\n', 1, `invalid name for build stage: "1st", name can't start with a number or contain symbols`);
  fails('FROM --platform a\n', 1, 'missing a value on flag: --platform');
  fails('FROM --plat=x a\n', 1, 'unknown flag: --plat');
});

test('ARGs before the first FROM are meta args; anything else there is an error', () => {
  const df = parseDockerfile('ARG BASE=alpine\nARG A B="two words"\nFROM $BASE\nARG A\n');
  assert.deepEqual(df.metaArgs.map(({ name, value }) => ({ name, value })), [
    { name: 'BASE', value: 'alpine' },
    { name: 'A', value: undefined },
    { name: 'B', value: '"two words"' },
  ]);
  assert.equal(df.metaArgs[2].origin.line, 2);
  assert.deepEqual((df.stages[0].commands[0] as Extract<Command, { kind: 'ARG' }>).args, [{ name: 'A' }]);
  fails('ARG X\nRUN echo\nFROM x\n', 2, 'no build stage in current context');
  fails('ARG =x\nFROM x\n', 1, 'ARG names can not be blank');
  fails('FROM x\nARG\n', 2, 'ARG requires at least one argument');
});

test('RUN shell and exec forms, mounts, network, security', () => {
  assert.deepEqual(only('RUN echo "$HOME" && ls\n', 'RUN').args, ['echo "$HOME" && ls']);
  const exec = only('RUN ["/bin/sh", "-c", "echo hi"]\n', 'RUN');
  assert.equal(exec.shell, false);
  assert.deepEqual(exec.args, ['/bin/sh', '-c', 'echo hi']);
  const run = only('RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok,required --mount=target=/src,ro --network=none apk add x\n', 'RUN');
  assert.deepEqual(run.mounts, [
    { type: 'cache', options: { target: '/root/.cache', sharing: 'locked' } },
    { type: 'secret', options: { id: 'tok', required: 'true' } },
    { type: 'bind', options: { target: '/src', ro: 'true' } },
  ]);
  assert.equal(run.network, 'none');
  assert.equal(run.shell, true);
  fails('FROM x\nRUN --mount=type=nfs,target=/x a\n', 2, 'unsupported mount type "nfs"');
  fails('FROM x\nRUN --network=bridge a\n', 2, 'invalid network mode "bridge"');
  fails('FROM x\nRUN --security=root a\n', 2, 'security "root" is not valid');
  fails('FROM x\nRUN --mount=type=cahce,target=/x a\n', 2, 'unsupported mount type "cahce" (did you mean cache?)');
  fails('FROM x\nRUN --mount=type=cache,taget=/x a\n', 2, "unexpected key 'taget' in 'taget=/x' (did you mean target?)");
  fails('FROM x\nRUN --mount=type=cache,target a\n', 2, "invalid field 'target' must be a key=value pair");
  fails('FROM x\nRUN --mount=from=$STAGE,target=/x a\n', 2, "'from' doesn't support variable expansion, define alias stage instead");
  // The flag's own quotes go first (BuildKit's flag extraction), so CSV quoting needs a second layer.
  assert.deepEqual(only(`RUN --mount='type=bind,"source=a,b",target=/x,RW' a\n`, 'RUN').mounts, [{ type: 'bind', options: { source: 'a,b', target: '/x', rw: 'true' } }]);
  fails('FROM x\nRUN --from=a b\n', 2, 'unknown flag: --from');
});

test('RUN with heredocs keeps the heredocs and the command line', () => {
  const run = only('RUN <<EOF\nset -e\necho hi\nEOF\n', 'RUN');
  assert.deepEqual(run.args, ['<<EOF']);
  assert.equal(run.heredocs[0].content, 'set -e\necho hi\n');
  assert.equal(run.endLine, 5);
});

test('CMD and ENTRYPOINT', () => {
  assert.deepEqual(only('CMD ["nginx", "-g", "daemon off;"]\n', 'CMD'), {
    kind: 'CMD', shell: false, args: ['nginx', '-g', 'daemon off;'], line: 2, endLine: 2, original: 'CMD ["nginx", "-g", "daemon off;"]',
  });
  const e = only('ENTRYPOINT exec top -b\n', 'ENTRYPOINT');
  assert.deepEqual([e.shell, e.args], [true, ['exec top -b']]);
  assert.deepEqual(only('CMD []\n', 'CMD').args, []);
  const bare = only('ENTRYPOINT\n', 'ENTRYPOINT');
  assert.deepEqual([bare.shell, bare.args], [true, ['']], 'shell form is one string, even when empty');
});

test('SHELL requires JSON', () => {
  assert.deepEqual(only('SHELL ["/bin/bash", "-c"]\n', 'SHELL').args, ['/bin/bash', '-c']);
  fails('FROM x\nSHELL /bin/bash -c\n', 2, 'SHELL requires the arguments to be in JSON form');
  fails('FROM x\nSHELL []\n', 2, 'SHELL requires at least one argument');
});

test('ENV: k=v pairs with quotes and escapes kept for expansion, and the legacy one-pair form', () => {
  assert.deepEqual(only('ENV A=1 B="two words" C=three\\ x D=\'$lit\'\n', 'ENV').pairs, [
    ['A', '1'], ['B', '"two words"'], ['C', 'three\\ x'], ['D', "'$lit'"],
  ]);
  assert.deepEqual(only('ENV PATH /usr/local/bin:$PATH  and more\n', 'ENV').pairs, [['PATH', '/usr/local/bin:$PATH  and more']]);
  assert.deepEqual(only('ENV A=\n', 'ENV').pairs, [['A', '']]);
  fails('FROM x\nENV\n', 2, 'ENV requires at least one argument');
  fails('FROM x\nENV ONLY\n', 2, 'ENV must have two arguments');
  fails('FROM x\nENV a=1 b\n', 2, `Syntax error - can't find = in "b". Must be of the form: name=value`);
  fails('FROM x\nENV =1\n', 2, 'ENV names can not be blank');
});

test('ENV with the backtick escape keeps backslashes literal', () => {
  const df = parseDockerfile('# escape=`\nFROM x\nENV P=C:\\dir Q=a` b\n');
  assert.deepEqual((df.stages[0].commands[0] as Extract<Command, { kind: 'ENV' }>).pairs, [['P', 'C:\\dir'], ['Q', 'a` b']]);
});

test('LABEL pairs', () => {
  assert.deepEqual(only('LABEL "com.example.vendor"="ACME Inc" version=1.0 description="a \\"quoted\\" word"\n', 'LABEL').pairs, [
    ['"com.example.vendor"', '"ACME Inc"'], ['version', '1.0'], ['description', '"a \\"quoted\\" word"'],
  ]);
  fails('FROM x\nLABEL\n', 2, 'LABEL requires at least one argument');
});

test('single-value instructions take the whole rest of the line', () => {
  assert.equal(only('WORKDIR /a b\n', 'WORKDIR').value, '/a b');
  assert.equal(only('USER app:app\n', 'USER').value, 'app:app');
  assert.equal(only('STOPSIGNAL SIGKILL\n', 'STOPSIGNAL').value, 'SIGKILL');
  assert.equal(only('MAINTAINER Jane <j@x>\n', 'MAINTAINER').value, 'Jane <j@x>');
  for (const k of ['WORKDIR', 'USER', 'STOPSIGNAL', 'MAINTAINER']) fails(`FROM x\n${k}\n`, 2, `${k} requires exactly one argument`);
});

test('EXPOSE and VOLUME', () => {
  assert.deepEqual(only('EXPOSE 80/tcp 443 $PORT\n', 'EXPOSE').ports, ['80/tcp', '443', '$PORT']);
  assert.deepEqual(only('VOLUME ["/data", "/logs"]\n', 'VOLUME').paths, ['/data', '/logs']);
  assert.deepEqual(only('VOLUME /data /logs\n', 'VOLUME').paths, ['/data', '/logs']);
  fails('FROM x\nEXPOSE\n', 2, 'EXPOSE requires at least one argument');
  fails('FROM x\nVOLUME\n', 2, 'VOLUME requires at least one argument');
  fails('FROM x\nVOLUME ["/a", " "]\n', 2, 'VOLUME specified can not be an empty string');
});

test('COPY and ADD flags, sources and destination', () => {
  const c = only('COPY --from=build --chown=app:app --chmod=0755 --link --exclude=*.md --exclude=tmp src/ lib/ /app/\n', 'COPY');
  assert.deepEqual(
    { sources: c.sources, dest: c.dest, from: c.from, chown: c.chown, chmod: c.chmod, link: c.link, exclude: c.exclude },
    { sources: ['src/', 'lib/'], dest: '/app/', from: 'build', chown: 'app:app', chmod: '0755', link: true, exclude: ['*.md', 'tmp'] },
  );
  assert.equal(only('COPY --link=false a b\n', 'COPY').link, false);
  assert.equal(only('COPY --parents a/b c\n', 'COPY').parents, true);
  assert.deepEqual(only('COPY ["a b", "c d", "/dst dir/"]\n', 'COPY').sources, ['a b', 'c d']);
  const add = only('ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.tar /y\n', 'ADD');
  assert.deepEqual([add.checksum, add.keepGitDir, add.sources], ['sha256:abc', true, ['https://x/y.tar']]);
  fails('FROM x\nCOPY onlyone\n', 2, 'COPY requires at least two arguments, but only one was provided. Destination could not be determined');
  fails('FROM x\nADD --from=x a b\n', 2, 'unknown flag: --from');
  fails('FROM x\nCOPY --link=maybe a b\n', 2, 'expecting boolean value for flag --link, not: maybe');
  fails('FROM x\nCOPY --from=a --from=b a b\n', 2, 'duplicate flag specified: --from');
  fails('FROM x\nCOPY --chown a b\n', 2, 'missing a value on flag: --chown');
  fails('FROM x\nCOPY --from=$STAGE a b\n', 2, 'variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround');
});

test('COPY heredoc sources', () => {
  const c = only('COPY <<EOF <<-"CONF" /etc/\nhello\nEOF\n\tk=$v\n\tCONF\n', 'COPY');
  assert.deepEqual(c.sources, ['<<EOF', '<<-"CONF"']);
  assert.equal(c.dest, '/etc/');
  assert.deepEqual(heredocForSource(c.sources[0], c.heredocs), { name: 'EOF', content: 'hello\n', expand: true, chomp: false });
  assert.deepEqual(heredocForSource(c.sources[1], c.heredocs), { name: 'CONF', content: 'k=$v\n', expand: false, chomp: true });
  assert.equal(heredocForSource('plain.txt', c.heredocs), undefined);
  fails('FROM x\nCOPY a <<EOF\nb\nEOF\n', 2, 'COPY cannot accept a heredoc as a destination');
});

test('HEALTHCHECK: CMD shell and exec forms, durations in ns, NONE', () => {
  const h = only('HEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 CMD curl -f http://localhost/\n', 'HEALTHCHECK');
  assert.deepEqual(h.test, ['CMD-SHELL', 'curl -f http://localhost/']);
  assert.deepEqual([h.interval, h.timeout, h.startPeriod, h.startInterval, h.retries], [30e9, 90e9, 500e6, 2e9, 3]);
  assert.deepEqual(only('HEALTHCHECK CMD ["/bin/check", "-q"]\n', 'HEALTHCHECK').test, ['CMD', '/bin/check', '-q']);
  const none = only('HEALTHCHECK none\n', 'HEALTHCHECK');
  assert.deepEqual([none.test, none.interval, none.retries], [['NONE'], 0, 0]);
  fails('FROM x\nHEALTHCHECK\n', 2, 'HEALTHCHECK requires at least one argument');
  fails('FROM x\nHEALTHCHECK NONE x\n', 2, 'HEALTHCHECK NONE takes no arguments');
  fails('FROM x\nHEALTHCHECK CMD\n', 2, 'Missing command after HEALTHCHECK CMD');
  fails('FROM x\nHEALTHCHECK RUN x\n', 2, 'Unknown type "RUN" in HEALTHCHECK (try CMD)');
  fails('FROM x\nHEALTHCHECK --interval=10 CMD x\n', 2, 'time: missing unit in duration "10"');
  fails('FROM x\nHEALTHCHECK --interval=1us CMD x\n', 2, 'Interval "interval" cannot be less than 1ms');
  fails('FROM x\nHEALTHCHECK --retries=-1 CMD x\n', 2, '--retries cannot be negative (-1)');
  fails('FROM x\nHEALTHCHECK --every=1s CMD x\n', 2, 'unknown flag: --every');
  fails('FROM x\nHEALTHCHECK --intervall=1s CMD x\n', 2, 'unknown flag: --intervall (did you mean interval?)');
});

test('Go durations', () => {
  assert.equal(parseGoDuration('1h2m3.5s'), 3723.5e9);
  assert.equal(parseGoDuration('0'), 0);
  assert.equal(parseGoDuration('1.5µs'), 1500);
  assert.throws(() => parseGoDuration('1d'), /unknown unit "d"/);
  assert.throws(() => parseGoDuration(''), /invalid duration/);
});

test('ONBUILD keeps the trigger as written and refuses what Docker refuses', () => {
  const o = only('ONBUILD  COPY . /app\n', 'ONBUILD');
  assert.equal(o.expression, 'COPY . /app');
  assert.equal(only('onbuild RUN <<EOF\necho hi\nEOF\n', 'ONBUILD').expression, 'RUN <<EOF\necho hi\nEOF');
  fails('FROM x\nONBUILD ONBUILD RUN x\n', 2, 'Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
  fails('FROM x\nONBUILD FROM y\n', 2, "FROM isn't allowed as an ONBUILD trigger");
  fails('FROM x\nONBUILD MAINTAINER me\n', 2, "MAINTAINER isn't allowed as an ONBUILD trigger");
  fails('FROM x\nONBUILD\n', 2, 'ONBUILD requires at least one argument');
  // As in Docker, the rest of a trigger is checked only when it runs.
  assert.equal(only('ONBUILD COPY one\n', 'ONBUILD').expression, 'COPY one');
  assert.equal(only('ONBUILD FOO bar\n', 'ONBUILD').expression, 'FOO bar');
});

test('triggers parse back into commands', () => {
  const cmds = parseTriggers(['COPY . /app', 'RUN <<EOF\necho hi\nEOF', 'ENV A=1']);
  assert.deepEqual(cmds.map((c) => c.kind), ['COPY', 'RUN', 'ENV']);
  assert.equal((cmds[1] as Extract<Command, { kind: 'RUN' }>).heredocs[0].content, 'echo hi\n');
  assert.throws(() => parseTriggers(['FROM x']), /FROM isn't allowed as an ONBUILD trigger/);
  assert.throws(() => parseTriggers(['COPY one']), /COPY requires at least two arguments/);
  assert.throws(() => parseTriggers(['FOO bar']), /unknown instruction: FOO/);
});

test('instructions refuse flags they do not take', () => {
  fails('FROM x\nENV --x=1 a=b\n', 2, 'unknown flag: --x');
  fails('FROM x\nWORKDIR --chown=1 /a\n', 2, 'unknown flag: --chown');
});

test('parseWords keeps quotes and escapes, splits on unquoted blanks', () => {
  assert.deepEqual(parseWords(`a="x y" b='c d' e=f\\ g h`, '\\'), ['a="x y"', "b='c d'", 'e=f\\ g', 'h']);
  assert.deepEqual(parseWords(`a="q\\"uote" z`, '\\'), ['a="q\\"uote"', 'z']);
});

test('runInvocation: how a RUN with heredocs runs', () => {
  assert.deepEqual(runInvocation(only('RUN echo hi\n', 'RUN')), { shell: true, args: ['echo hi'] });
  assert.deepEqual(runInvocation(only('RUN ["a", "b"]\n', 'RUN')), { shell: false, args: ['a', 'b'] });
  assert.deepEqual(runInvocation(only('RUN <<EOF\necho one\necho two\nEOF\n', 'RUN')), { shell: true, args: ['echo one\necho two\n'] });
  assert.deepEqual(runInvocation(only('RUN <<-EOF\n\techo tab\n\tEOF\n', 'RUN')), { shell: true, args: ['echo tab\n'] });
  assert.deepEqual(runInvocation(only('RUN <<PY\n#!/usr/bin/env python3\nprint(1)\nPY\n', 'RUN')), {
    shell: true,
    args: ['/dev/pipes/PY'],
    script: { path: '/dev/pipes/PY', content: '#!/usr/bin/env python3\nprint(1)\n' },
  });
  assert.deepEqual(runInvocation(only('RUN python3 <<EOF\nprint(1)\nEOF\n', 'RUN')), { shell: true, args: ['python3 <<EOF\nprint(1)\nEOF'] });
  assert.deepEqual(runInvocation(only('RUN <<A cat - <<B\na\nA\nb\nB\n', 'RUN')), { shell: true, args: ['<<A cat - <<B\na\nA\nb\nB'] });
});

test('resolveMount: BuildKit defaults and checks on expanded mount options', () => {
  const mounts = (flags: string) => only(`RUN ${flags} true\n`, 'RUN').mounts.map((m) => resolveMount(m, 2));
  assert.deepEqual(mounts('--mount=target=/src'), [{ type: 'bind', target: '/src', readonly: true, required: false }]);
  assert.deepEqual(mounts('--mount=type=bind,target=/src,rw=true,from=builder,source=/out'), [
    { type: 'bind', target: '/src', readonly: false, required: false, from: 'builder', source: '/out' },
  ]);
  assert.deepEqual(mounts('--mount=type=cache,target=/c,sharing=LOCKED,mode=0700,uid=1000'), [
    { type: 'cache', target: '/c', readonly: false, required: false, sharing: 'locked', mode: 0o700, uid: 1000 },
  ]);
  assert.deepEqual(mounts('--mount=type=tmpfs,target=/t,size=64m'), [{ type: 'tmpfs', target: '/t', readonly: false, required: false, sizeLimit: 64 * 1024 * 1024 }]);
  assert.deepEqual(mounts('--mount=type=secret,id=tok,env=TOKEN,required'), [{ type: 'secret', id: 'tok', env: 'TOKEN', readonly: true, required: true }]);
  const bad = (flags: string, message: string) => assert.throws(() => mounts(flags), (e: unknown) => e instanceof DockerfileError && e.message === `dockerfile parse error on line 2: ${message}`);
  bad('--mount=type=bind,target=/x,required', "unexpected key 'required' for mount type 'bind'");
  bad('--mount=type=bind,target=/x,ro=maybe', 'invalid value for ro: maybe');
  bad('--mount=type=cache,target=/x,size=1g', "unexpected key 'size' for mount type 'cache'");
  bad('--mount=type=tmpfs,target=/x,size=lots', 'invalid value for size: lots');
  bad('--mount=type=cache,target=/x,sharing=open', 'unsupported sharing value "open"');
  bad('--mount=type=cache,target=/x,mode=999', 'invalid value 999 for mode');
  bad('--mount=type=bind,target=/x,uid=1', 'uid not allowed for "bind" type mounts');
  bad('--mount=type=secret', 'invalid secret mount. one of source, target required');
  bad('--mount=type=secret,id=a,source=b', "both source and id can't be set");
  bad('--mount=type=secret,id=a,from=x', 'secret mount should not have a from');
  bad('--mount=type=bind,target=/x,sharing=locked', 'invalid cache sharing set for bind mount');
});
