import { test } from 'node:test';
import assert from 'node:assert/strict';
import { displayWidth, formatItems, tabwrite } from './table.ts';
import { ErrorCode, isBerthError } from '../../common/errors.ts';

// Expected values are what docker's tabwriter (minwidth 10, tabwidth 1,
// padding 3, padchar ' ') and formatter print; checked against docker 28.

const tabwriteCases: [name: string, input: string, expected: string][] = [
  ['empty', '', ''],
  ['no tabs', 'abc\ndef\n', 'abc\ndef\n'],
  ['no trailing newline', 'a\tb', 'a         b'],
  ['minimum width 10', 'a\tb\nccc\td\n', 'a         b\nccc       d\n'],
  ['padding 3 past the widest cell', 'short\tx\na-much-longer-cell\ty\n', 'short                x\na-much-longer-cell   y\n'],
  [
    'several columns',
    'IMAGE ID\tREPOSITORY\tTAG\tSIZE\nsha256:0123456789ab\tdocker.io/library/nginx\tlatest\t192MB\n',
    'IMAGE ID              REPOSITORY                TAG       SIZE\n' +
      'sha256:0123456789ab   docker.io/library/nginx   latest    192MB\n',
  ],
  ['the last cell is never padded', 'a\tb\taaaaaaaaaaaaaaa\nc\td\te\n', 'a         b         aaaaaaaaaaaaaaa\nc         d         e\n'],
  ['a trailing tab makes a column', 'a\t\nlong-cell-here\t\n', 'a                \nlong-cell-here   \n'],
  ['empty cells are padded', '\tx\n\t\ty\n', '          x\n                    y\n'],
  [
    'a line with fewer cells ends the column block',
    'aaaaaaaaaaaaaaaa\tb\nc\n1\t2\n',
    'aaaaaaaaaaaaaaaa   b\nc\n1         2\n',
  ],
  [
    'blocks are per column: the second column restarts where a line is short',
    'a\tbbbbbbbbbbbbbbbbb\tc\nd\te\nf\tg\th\n',
    'a         bbbbbbbbbbbbbbbbb   c\nd         e\nf         g         h\n',
  ],
  [
    'tab-terminated cells only form columns',
    'aaaa\tbbb\td\naa\tb\tdd\na\t\naa\tcccc\teee\n',
    'aaaa      bbb       d\naa        b         dd\na         \naa        cccc      eee\n',
  ],
  ['code points, not bytes', 'é\tx\nabcdefghijklé\ty\n', 'é               x\nabcdefghijklé   y\n'],
  ['East Asian wide characters count two', 'NAME\tX\n日本語日本語日本\ty\n', 'NAME               X\n日本語日本語日本   y\n'],
  ['emoji count two, combining marks zero', '😀a\tx\ne\u0301b\ty\nabcdefghij\tz\n', '😀a          x\ne\u0301b           y\nabcdefghij   z\n'],
  ['a form feed ends all columns', 'a\tb\nccccccccccccccc\td\f1\t2\n', 'a                 b\nccccccccccccccc   d\n1         2\n'],
];

test('tabwrite aligns like docker', () => {
  for (const [name, input, expected] of tabwriteCases) {
    assert.equal(tabwrite(input), expected, name);
  }
});

test('displayWidth', () => {
  assert.equal(displayWidth('abc'), 3);
  assert.equal(displayWidth('éé'), 2);
  assert.equal(displayWidth('e\u0301'), 1);
  assert.equal(displayWidth('日本語'), 6);
  assert.equal(displayWidth('😀'), 2);
  assert.equal(displayWidth('👍🏽'), 2);
  assert.equal(displayWidth('🇯🇵'), 1);
  assert.equal(displayWidth('ｶﾀｶﾅ'), 4);
  assert.equal(displayWidth('soft\u00adhyphen'), 10);
  assert.equal(displayWidth('🏳️‍🌈'), 1);
  assert.equal(displayWidth('क्ष'), 2);
});

const images = [
  { ID: 'sha256:1111', Repository: 'nginx', Tag: 'latest', Size: '192MB', Labels: { b: '2', a: '1' } },
  { ID: 'sha256:22222222', Repository: 'docker.io/library/busybox', Tag: '1.36', Size: '4.3MB', Labels: {} },
];
const imageHeaders = { ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Size: 'SIZE' };

test('formatItems: table with a template', () => {
  assert.equal(
    formatItems('table {{.Repository}}\\t{{.Tag}}\\t{{.Size}}', images, imageHeaders),
    'REPOSITORY                  TAG       SIZE\n' +
      'nginx                       latest    192MB\n' +
      'docker.io/library/busybox   1.36      4.3MB\n',
  );
  // docker images --format 'table {{.Repository}}\t{{.Tag}}' → header `REPOSITORY   TAG`
  assert.equal(
    formatItems('table {{.Repository}}\\t{{.Tag}}', [{ Repository: 'alpine', Tag: '3' }], imageHeaders),
    'REPOSITORY   TAG\nalpine       3\n',
  );
});

test('formatItems: header functions keep the titles; pad still applies', () => {
  assert.equal(
    formatItems('table {{upper .Repository}}\\t{{truncate .ID 10}}\\t{{pad .Tag 1 1}}|', images, imageHeaders),
    'REPOSITORY                  IMAGE ID      TAG |\n' +
      'NGINX                       sha256:111    latest |\n' +
      'DOCKER.IO/LIBRARY/BUSYBOX   sha256:222    1.36 |\n',
  );
  // a field without a title prints <no value> in the header, as with docker's header maps
  assert.equal(formatItems('table {{.Tag}}\\t{{.Labels}}', images.slice(0, 1), imageHeaders), 'TAG       <no value>\nlatest    map[a:1 b:2]\n');
});

test('formatItems: table with no items still prints the header', () => {
  assert.equal(formatItems('table {{.ID}}\\t{{.Size}}', [], imageHeaders), 'IMAGE ID   SIZE\n');
});

test('formatItems: bare table shows every header column', () => {
  assert.equal(
    formatItems('table', images, imageHeaders),
    'IMAGE ID          REPOSITORY                  TAG       SIZE\n' +
      'sha256:1111       nginx                       latest    192MB\n' +
      'sha256:22222222   docker.io/library/busybox   1.36      4.3MB\n',
  );
});

test('formatItems: plain template, no header, no alignment', () => {
  assert.equal(formatItems('{{.Repository}}:{{.Tag}}', images, imageHeaders), 'nginx:latest\ndocker.io/library/busybox:1.36\n');
  assert.equal(formatItems('{{.ID}}\\t{{.Tag}}', images, imageHeaders), 'sha256:1111\tlatest\nsha256:22222222\t1.36\n');
  assert.equal(formatItems('  {{.Tag}}  ', images, imageHeaders), 'latest\n1.36\n');
  assert.equal(formatItems('{{.Tag}}\\n', images, imageHeaders), 'latest\n\n1.36\n\n');
  assert.equal(formatItems('{{.Tag}}', [], imageHeaders), '');
});

test('formatItems: json prints each item on its own line, keys sorted like docker', () => {
  const expected =
    '{"ID":"sha256:1111","Labels":{"b":"2","a":"1"},"Repository":"nginx","Size":"192MB","Tag":"latest"}\n' +
    '{"ID":"sha256:22222222","Labels":{},"Repository":"docker.io/library/busybox","Size":"4.3MB","Tag":"1.36"}\n';
  assert.equal(formatItems('json', images, imageHeaders), expected);
  assert.equal(formatItems('{{json .}}', images, imageHeaders), expected);
  assert.equal(formatItems('{{json .Labels}}', images.slice(0, 1), imageHeaders), '{"b":"2","a":"1"}\n');
});

test('formatItems: errors are docker-style InvalidArgument', () => {
  assert.throws(
    () => formatItems('{{.ID', images, imageHeaders),
    (e: unknown) => isBerthError(e, ErrorCode.InvalidArgument) && e.message === 'template parsing error: template: :1: unclosed action',
  );
  assert.throws(
    () => formatItems('table {{.ID.Foo}}', images, imageHeaders),
    (e: unknown) =>
      isBerthError(e, ErrorCode.InvalidArgument) &&
      e.message === 'template parsing error: template: :1:5: executing "" at <.ID.Foo>: can\'t evaluate field Foo in type string',
  );
  assert.throws(
    () => formatItems('{{nosuch .ID}}', images, imageHeaders),
    (e: unknown) => isBerthError(e, ErrorCode.InvalidArgument) && e.message === 'template parsing error: template: :1: function "nosuch" not defined',
  );
});

test('formatItems: a failing header does not fail the table', () => {
  // docker ignores header execution errors and keeps what was written
  assert.equal(formatItems('table {{.Tag}}\\t{{json .}}', images.slice(0, 1), imageHeaders), 'TAG       \nlatest    {"ID":"sha256:1111","Labels":{"b":"2","a":"1"},"Repository":"nginx","Size":"192MB","Tag":"latest"}\n');
});
