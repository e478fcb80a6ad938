import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EXPANDED_INSTRUCTIONS, ExpansionError, expandCommand, expandHeredoc, expandWord, expandWords } from './expand.ts';
import { parseDockerfile } from './instructions.ts';

const env: Record<string, string> = { A: 'alpha', EMPTY: '', SP: 'x  y', PATH: '/usr/bin', FILE: 'archive.tar.gz', _u1: 'u' };
const lookup = (name: string) => (Object.hasOwn(env, name) ? env[name] : undefined);
const word = (w: string, escape = '\\') => expandWord(w, lookup, escape);

test('plain and braced variables, unset is empty', () => {
  assert.equal(word('$A'), 'alpha');
  assert.equal(word('${A}'), 'alpha');
  assert.equal(word('pre${A}post'), 'prealphapost');
  assert.equal(word('$Apost'), ''); // the name runs on: Apost is unset
  assert.equal(word('$NOPE/x'), '/x');
  assert.equal(word('$_u1-'), 'u-');
  assert.equal(word('a$'), 'a$');
  assert.equal(word('$/'), '$/');
  assert.equal(word('${PATH}:/bin'), '/usr/bin:/bin');
});

test('default and alternative values tell unset from empty', () => {
  assert.equal(word('${NOPE:-def}'), 'def');
  assert.equal(word('${EMPTY:-def}'), 'def');
  assert.equal(word('${A:-def}'), 'alpha');
  assert.equal(word('${NOPE-def}'), 'def');
  assert.equal(word('${EMPTY-def}'), '');
  assert.equal(word('${A:+alt}'), 'alt');
  assert.equal(word('${EMPTY:+alt}'), '');
  assert.equal(word('${NOPE:+alt}'), '');
  assert.equal(word('${EMPTY+alt}'), 'alt');
  assert.equal(word('${NOPE+alt}'), '');
  assert.equal(word('${NOPE:-$A}'), 'alpha', 'the word itself is expanded');
  assert.equal(word('${NOPE:-${EMPTY:-deep}}'), 'deep');
  assert.equal(word('${NOPE:-"a b"}'), 'a b');
});

test('required values fail with the message given', () => {
  assert.equal(word('${A:?must}'), 'alpha');
  assert.throws(() => word('${NOPE:?must be set}'), (e: unknown) => e instanceof ExpansionError && e.reason === 'NOPE: must be set');
  assert.throws(() => word('${EMPTY:?}'), (e: unknown) => e instanceof ExpansionError && e.reason === 'EMPTY: is not allowed to be empty');
  assert.throws(() => word('${NOPE:?}'), /failed to process "\$\{NOPE:\?\}": NOPE: is not allowed to be unset/);
  assert.equal(word('${EMPTY?x}'), '');
  assert.throws(() => word('${NOPE?x}'), /NOPE: x/);
});

test('pattern removal and replacement', () => {
  assert.equal(word('${FILE#*.}'), 'tar.gz');
  assert.equal(word('${FILE##*.}'), 'gz');
  assert.equal(word('${FILE%.*}'), 'archive.tar');
  assert.equal(word('${FILE%%.*}'), 'archive');
  assert.equal(word('${FILE/a/A}'), 'Archive.tar.gz');
  assert.equal(word('${FILE//a/A}'), 'Archive.tAr.gz');
  assert.equal(word('${FILE/a*/X}'), 'X', 'replacement patterns are greedy');
  assert.equal(word('${FILE#a?c}'), 'hive.tar.gz');
  assert.equal(word('${FILE#[a]}'), 'archive.tar.gz', 'no bracket expressions: [ is literal');
  assert.equal(word('${FILE%\\*}'), 'archive.tar.gz');
  assert.equal(word('${NOPE#x}'), '');
  assert.equal(word('${PATH/\\//:}'), ':usr/bin', '\\/ escapes the delimiter');
});

test('heredoc bodies of COPY and ADD: quotes are ordinary characters, escapes still work', () => {
  const body = 'say "$A" and \'$A\' \\$A ${NOPE:-d}\n';
  assert.equal(expandWord(body, lookup, '\\', { skipQuotes: true }), 'say "alpha" and \'alpha\' $A d\n');
  assert.equal(expandHeredoc(body, lookup), 'say "alpha" and \'alpha\' $A d\n');
  assert.equal(expandHeredoc('<?xml version="1.0"?>\n', lookup), '<?xml version="1.0"?>\n');
});

test('malformed substitutions are errors', () => {
  assert.throws(() => word('${A'), /missing '}'/);
  assert.throws(() => word('${}'), /bad substitution/);
  assert.throws(() => word('${:-x}'), /bad substitution/);
  assert.throws(() => word('${A:-x'), /missing '}'/);
  assert.throws(() => word('${A:=x}'), /unsupported modifier \(:=\) in substitution/);
  assert.throws(() => word('${A:#x}'), /unsupported modifier \(:#\) in substitution/);
  assert.throws(() => word('${A!x}'), /unsupported modifier \(!\) in substitution/);
  assert.throws(() => word('${A:=x'), /missing '}'/);
  assert.throws(() => word('${A/x}'), /missing '\/' in \$\{\}/);
  assert.throws(() => word('${A#\\x}'), /invalid escape/);
});

test('quotes: single is literal, double expands, both are removed', () => {
  assert.equal(word(`'$A'`), '$A');
  assert.equal(word(`"$A"`), 'alpha');
  assert.equal(word(`"it's"`), "it's");
  assert.equal(word(`'say "hi"'`), 'say "hi"');
  assert.equal(word(`a"b c"d`), 'ab cd');
  assert.equal(word(`"a\\"b"`), 'a"b');
  assert.equal(word(`"a\\$A"`), 'a$A');
  assert.equal(word(`"a\\\\b"`), 'a\\b');
  assert.equal(word(`"a\\nb"`), 'a\\nb', 'other escapes stay as written inside double quotes');
  assert.equal(word(`'a\\nb'`), 'a\\nb');
  assert.throws(() => word(`"open`), /matching double-quote/);
  assert.throws(() => word(`'open`), /matching single-quote/);
});

test('escapes outside quotes, with either escape character', () => {
  assert.equal(word('\\$A'), '$A');
  assert.equal(word('a\\ b'), 'a b');
  assert.equal(word('\\"x\\"'), '"x"');
  assert.equal(word('trail\\'), 'trail');
  assert.equal(word('`$A', '`'), '$A');
  assert.equal(word('C:\\dir', '`'), 'C:\\dir', 'with a backtick escape, \\ is an ordinary character');
  assert.equal(word('"a`"b"', '`'), 'a"b');
});

test('words split on unquoted blanks, including blanks from unquoted variables', () => {
  assert.deepEqual(expandWords('80 443/tcp', lookup), ['80', '443/tcp']);
  assert.deepEqual(expandWords('$SP z', lookup), ['x', 'y', 'z']);
  assert.deepEqual(expandWords('"$SP" z', lookup), ['x  y', 'z']);
  assert.deepEqual(expandWords("'a b' c\\ d", lookup), ['a b', 'c d']);
  assert.deepEqual(expandWords('  lead  trail  ', lookup), ['lead', 'trail']);
  assert.deepEqual(expandWords('a "" b', lookup), ['a', 'b']);
  assert.deepEqual(expandWords('cat << EOF', lookup), ['cat', '<< EOF'], 'blanks after << stay in its word');
  assert.equal(word('$SP z'), 'x  y z', 'expandWord keeps the spaces');
});

test('raw modes keep quotes and escapes, skipUnset keeps unknown variables', () => {
  assert.deepEqual(expandWords(`cat <<"EOF" x\\ y`, lookup, '\\', { rawQuotes: true, rawEscapes: true }), ['cat', '<<"EOF"', 'x\\ y']);
  assert.equal(expandWord('$NOPE ${NOPE} ${NOPE:-x} $A', lookup, '\\', { skipUnset: true }), '$NOPE ${NOPE} ${NOPE:-x} alpha');
});

test('the expanded instruction set is the Dockerfile reference list plus ARG', () => {
  for (const k of ['ADD', 'COPY', 'ENV', 'EXPOSE', 'FROM', 'LABEL', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR', 'ARG']) assert.ok(EXPANDED_INSTRUCTIONS.has(k), k);
  for (const k of ['RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'HEALTHCHECK', 'ONBUILD', 'MAINTAINER']) assert.ok(!EXPANDED_INSTRUCTIONS.has(k), k);
});

test('expandCommand expands the words Docker expands, and only those', () => {
  const vars: Record<string, string> = { V: '1.2', DIR: '/app', U: 'nobody', PORTS: '80 443', SIG: 'TERM', HOME: '/root' };
  const look = (n: string) => vars[n];
  const text = [
    'FROM x',
    'ENV K_$V="v $V" PLAIN=\'$V\'',
    'LABEL version=$V',
    'ARG A=${V}-x B',
    'COPY --from=build --chown=$U --chmod=0${V%.*}44 --exclude=$V src-$V <<EOF $DIR/',
    'v=$V "q"',
    'EOF',
    'ADD --checksum=sha256:$V a $DIR/a',
    'WORKDIR $DIR/sub',
    'USER ${U}',
    'STOPSIGNAL SIG$SIG',
    'VOLUME $DIR/data /x',
    'EXPOSE $PORTS 8080',
    'RUN --mount=type=cache,target=$HOME/.cache,ro echo $V',
    'CMD echo $V',
    'ONBUILD RUN echo $V',
  ].join('\n') + '\n';
  const out = parseDockerfile(text).stages[0].commands.map((c) => expandCommand(c, look));
  const [env, label, arg, copy, add, workdir, user, stopsignal, volume, expose, run, cmd, onbuild] = out as any[];
  assert.deepEqual(env.pairs, [['K_1.2', 'v 1.2'], ['PLAIN', '$V']]);
  assert.deepEqual(label.pairs, [['version', '1.2']]);
  assert.deepEqual(arg.args, [{ name: 'A', value: '1.2-x' }, { name: 'B' }]);
  assert.deepEqual([copy.from, copy.chown, copy.chmod, copy.exclude, copy.sources, copy.dest], ['build', 'nobody', '0144', ['$V'], ['src-1.2', '<<EOF'], '/app/']);
  assert.equal(copy.heredocs[0].content, 'v=1.2 "q"\n');
  assert.deepEqual([add.checksum, add.dest], ['sha256:1.2', '/app/a']);
  assert.equal(workdir.value, '/app/sub');
  assert.equal(user.value, 'nobody');
  assert.equal(stopsignal.value, 'SIGTERM');
  assert.deepEqual(volume.paths, ['/app/data', '/x']);
  assert.deepEqual(expose.ports, ['80', '443', '8080']);
  assert.deepEqual(run.mounts[0].options, { target: '/root/.cache', ro: 'true' });
  assert.deepEqual(run.args, ['echo $V']);
  assert.deepEqual(cmd.args, ['echo $V']);
  assert.equal(onbuild.expression, 'RUN echo $V');
  // Shell-form VOLUME splits on blanks before expansion, so quotes cannot group words (as in Docker).
  const [vol] = parseDockerfile('FROM x\nVOLUME "/x y"\n').stages[0].commands;
  assert.throws(() => expandCommand(vol, look), /matching double-quote/);
});
