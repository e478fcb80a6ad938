import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extractFlags, heredocsInLine, parse, parseHeredocWord } from './parser.ts';
import { DockerfileError } from './types.ts';

const keywords = (text: string) => parse(text).nodes.map((n) => n.keyword);

test('directives at the top set escape, syntax and check', () => {
  const p = parse('# syntax=docker/dockerfile:1.7\n#ESCAPE = `\n# check=skip=all\nFROM x\n');
  assert.deepEqual(p.directives, { escape: '`', syntax: 'docker/dockerfile:1.7', check: 'skip=all' });
});

test('directives stop at the first other line: blank, comment, unknown directive or instruction', () => {
  assert.equal(parse('\n# escape=`\nFROM x\n').directives.escape, '\\');
  assert.equal(parse('# a comment\n# escape=`\nFROM x\n').directives.escape, '\\');
  assert.equal(parse('# unknown=1\n# escape=`\nFROM x\n').directives.escape, '\\');
  assert.equal(parse('FROM x\n# escape=`\n').directives.escape, '\\');
  // After the directives, the same text is a plain comment: even a repeat is fine.
  assert.deepEqual(keywords('# escape=\\\nFROM x\n# escape=`\n'), ['from']);
});

test('a repeated directive or a bad escape is an error naming its line', () => {
  assert.throws(() => parse('# escape=`\n# escape=\\\nFROM x\n'), (e: unknown) => e instanceof DockerfileError && e.line === 2 && /only one escape parser directive can be used/.test(e.message));
  assert.throws(() => parse('# syntax=a\n# SYNTAX=b\nFROM x\n'), /line 2: only one syntax parser directive/);
  assert.throws(() => parse('# escape=x\nFROM x\n'), /invalid escape token 'x' does not match ` or \\/);
});

test('continuations join lines, keep continuation indentation, and skip comments and blank lines', () => {
  const p = parse('FROM x\nRUN a \\\n    b \\\n# inner comment\n  # indented comment\n\n    c\nRUN d\n');
  const run = p.nodes[1];
  assert.equal(run.rest, 'a     b     c');
  assert.equal(run.line, 2);
  assert.equal(run.endLine, 7);
  assert.equal(p.nodes[2].line, 8);
  assert.equal(p.warnings.length, 1, 'the empty continuation line is warned about');
});

test('the backtick escape continues lines and a backslash is then ordinary', () => {
  const p = parse('# escape=`\nFROM x\nRUN dir C:\\ `\n  /s\n');
  assert.equal(p.nodes[1].rest, 'dir C:\\   /s');
});

test('an escaped escape at the end does not continue the line', () => {
  const p = parse('FROM x\nRUN echo \\\\\nRUN y\n');
  assert.equal(p.nodes.length, 3);
  assert.equal(p.nodes[1].rest, 'echo \\\\');
});

test('keywords are case-insensitive; unknown ones are an error with the line', () => {
  assert.deepEqual(keywords('from x\nRuN y\n'), ['from', 'run']);
  assert.throws(() => parse('FROM x\n\nFOO bar\n'), (e: unknown) => e instanceof DockerfileError && e.line === 3 && e.message === 'dockerfile parse error on line 3: unknown instruction: FOO (did you mean FROM?)');
  assert.throws(() => parse('FROM x\nbogus y\n'), /line 2: unknown instruction: bogus$/);
  assert.throws(() => parse('FROM x\nruns y\n'), /unknown instruction: runs \(did you mean run\?\)$/);
});

test('an empty file (or only comments) has no instructions', () => {
  assert.throws(() => parse('# only a comment\n\n'), /file with no instructions/);
});

test('CRLF line endings and a byte-order mark are accepted', () => {
  const p = parse('\ufeff# escape=`\r\nFROM x\r\nRUN a `\r\n b\r\n');
  assert.equal(p.directives.escape, '`');
  assert.equal(p.nodes[1].rest, 'a  b');
});

test('JSON form is read for exec-form instructions; invalid JSON falls back to shell form', () => {
  const [, run, cmd, bad, copy, label] = parse('FROM x\nRUN ["echo", "a b"]\nCMD [ "x" ]\nENTRYPOINT ["a", b]\nCOPY ["a b", "/c"]\nLABEL ["x"]\n').nodes;
  assert.deepEqual(run.json, ['echo', 'a b']);
  assert.deepEqual(cmd.json, ['x']);
  assert.equal(bad.json, undefined);
  assert.equal(bad.rest, '["a", b]');
  assert.deepEqual(copy.json, ['a b', '/c']);
  assert.equal(label.json, undefined, 'LABEL has no JSON form');
});

test('a JSON array of non-strings is an error', () => {
  assert.throws(() => parse('FROM x\nCMD ["a", 1]\n'), /line 2: when using JSON array syntax, arrays must be comprised of strings only/);
});

test('flags: quotes removed, stop at the first non-flag word or --', () => {
  assert.deepEqual(extractFlags('--from=build --chown="a b" src dst'), { flags: ['--from=build', '--chown=a b'], rest: 'src dst' });
  assert.deepEqual(extractFlags('--link -- --weird dst'), { flags: ['--link'], rest: '--weird dst' });
  assert.deepEqual(extractFlags('src --from=x'), { flags: [], rest: 'src --from=x' });
  const p = parse('FROM --platform=$BUILDPLATFORM golang AS b\n');
  assert.deepEqual(p.nodes[0].flags, ['--platform=$BUILDPLATFORM']);
  assert.equal(p.nodes[0].rest, 'golang AS b');
});

test('heredoc words: plain, chomped, quoted, with fd, and not-heredocs', () => {
  assert.deepEqual(parseHeredocWord('<<EOF'), { name: 'EOF', content: '', expand: true, chomp: false });
  assert.deepEqual(parseHeredocWord('<<-EOT'), { name: 'EOT', content: '', expand: true, chomp: true });
  assert.deepEqual(parseHeredocWord('<<"EOF"'), { name: 'EOF', content: '', expand: false, chomp: false });
  assert.deepEqual(parseHeredocWord("<<-'EOF'"), { name: 'EOF', content: '', expand: false, chomp: true });
  assert.equal(parseHeredocWord('2<<EOF')?.name, 'EOF');
  assert.equal(parseHeredocWord('<<'), undefined);
  assert.equal(parseHeredocWord('a<<EOF'), undefined);
  assert.deepEqual(heredocsInLine('RUN <<A cat - <<-"B" > /f', 1).map((h) => h.name), ['A', 'B']);
  assert.deepEqual(heredocsInLine('RUN echo "<<EOF"', 1), []);
  // Blanks after << are allowed (BuildKit 0.22), but not after <<-.
  assert.deepEqual(heredocsInLine('RUN cat << EOF > /f', 1).map((h) => [h.name, h.chomp]), [['EOF', false]]);
  assert.deepEqual(heredocsInLine('RUN cat <<  "E F"', 1).map((h) => [h.name, h.expand]), [['E F', false]]);
  assert.deepEqual(heredocsInLine('RUN cat <<- EOF', 1), []);
  assert.equal(parseHeredocWord('<< EOF')?.name, 'EOF');
});

test('heredoc bodies follow the instruction, in order, and move line numbers on', () => {
  const text = 'FROM x\nRUN <<EOF\necho $HOME\n  indented\nEOF\nRUN <<-A cat - <<"B"\n\tone\n\t\ttwo\n\tA\n$literal\nB\nCOPY <<EOF /f\nbody\nEOF\nRUN python3 <<PY\nprint(1)\nPY\nUSER nobody\n';
  const [, r1, r2, copy, py, user] = parse(text).nodes;
  assert.deepEqual(r1.heredocs, [{ name: 'EOF', content: 'echo $HOME\n  indented\n', expand: true, chomp: false }]);
  assert.equal(r1.rest, '<<EOF');
  assert.deepEqual([r1.line, r1.endLine], [2, 5]);
  assert.deepEqual(r2.heredocs, [
    { name: 'A', content: 'one\ntwo\n', expand: true, chomp: true },
    { name: 'B', content: '$literal\n', expand: false, chomp: false },
  ]);
  assert.deepEqual([r2.line, r2.endLine], [6, 11]);
  assert.equal(copy.heredocs[0].content, 'body\n');
  assert.equal(py.heredocs[0].content, 'print(1)\n');
  assert.equal(py.rest, 'python3 <<PY');
  assert.equal(user.line, 18);
});

test('heredocs only for RUN, COPY, ADD (and ONBUILD of them), never in JSON form', () => {
  const p = parse('FROM x\nENV A=<<EOF\nRUN ["cat", "<<EOF"]\nONBUILD RUN <<EOF\nhi\nEOF\n');
  assert.equal(p.nodes[1].heredocs.length, 0);
  assert.equal(p.nodes[2].heredocs.length, 0);
  assert.equal(p.nodes[3].trigger?.heredocs[0].content, 'hi\n');
  assert.equal(p.nodes.length, 4);
});

test('a heredoc without its terminator is an error on the instruction line', () => {
  assert.throws(() => parse('FROM x\nRUN <<EOF\necho\n'), /line 2: unterminated heredoc/);
});

test('a body keeps its exact bytes: CRLF and a last line without newline', () => {
  const p = parse('FROM x\r\nRUN <<EOF\r\na\r\nEOF\r\n');
  assert.equal(p.nodes[1].heredocs[0].content, 'a\r\n');
});
