import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTemplate } from './template.ts';
import { ErrorCode, isBerthError } from '../../common/errors.ts';

// Expected values are what Go's text/template (with the docker CLI's function
// set) prints; most were checked against docker 28's CLI.

const data = {
  Name: 'web',
  ID: 'sha256:abc',
  Size: 1234,
  Ratio: 0.25,
  Running: true,
  Paused: false,
  RepoTags: ['nginx:latest', 'nginx:1.27'],
  Labels: { 'com.example.b': 'two', 'com.example.a': 'one' },
  Nil: null,
  Empty: [],
  EmptyMap: {},
  Blank: '',
  Zero: 0,
  Config: { Cmd: ['nginx', '-g', 'daemon off;'], Env: null, Labels: { z: 'last', a: 'first' } },
  State: { Status: 'running', Pid: 42 },
  Mixed: ['a', null, 1, 1.5, true, { k: 'v' }, ['x']],
  Html: '<a&b>',
};

type Case = [template: string, expected: string, input?: unknown];

function check(cases: Case[]): void {
  for (const [tmpl, expected, input] of cases) {
    let got: string;
    try {
      got = parseTemplate(tmpl).execute(input === undefined ? data : input);
    } catch (e) {
      got = `ERR ${(e as Error).message}`;
    }
    assert.equal(got, expected, `template ${JSON.stringify(tmpl)}`);
  }
}

test('text, actions, trim markers and comments', () => {
  check([
    ['', ''],
    ['plain text', 'plain text'],
    ['{{.Name}}', 'web'],
    ['a {{.Name}} b', 'a web b'],
    ['{{ .Name }}', 'web'],
    ['a  {{- .Name -}}  b', 'awebb'],
    ['a\n  {{- .Name -}}\n  b', 'awebb'],
    ['{{ 3 }} {{- 4 -}} x', '34x'],
    ['{{-3}}', '-3'],
    ['{{3 -}} x', '3x'],
    ['{{/* comment */}}a', 'a'],
    ['{{/* multi\nline */}}a', 'a'],
    ['x {{- /* c */ -}} y', 'xy'],
    ['{{- /* c */}}x{{/* c */ -}}  y', 'xy'],
    ['{{"{{"}}', '{{'],
    ['}} {', '}} {'],
  ]);
});

test('fields, maps and missing values', () => {
  check([
    ['{{.State.Status}}', 'running'],
    ['{{.Config.Cmd}}', '[nginx -g daemon off;]'],
    ['{{.Labels}}', 'map[com.example.a:one com.example.b:two]'],
    ['{{.Missing}}', '<no value>'],
    ['{{.Missing.Deeper.Still}}', '<no value>'],
    ['{{.Nil}}', '<no value>'],
    ['{{.Config.Env}}', '<no value>'],
    ['{{.Mixed}}', '[a <nil> 1 1.5 true map[k:v] [x]]'],
    ['{{.Empty}} {{.EmptyMap}} [{{.Blank}}]', '[] map[] []'],
    ['{{.Size}} {{.Ratio}} {{.Running}} {{.Zero}}', '1234 0.25 true 0'],
    ['{{.}}', 'hello', 'hello'],
    ['{{.}}', '<no value>', null],
    ['{{.Foo}}', '<no value>', null],
    ['{{$.Name}} {{$}}', 'x map[Name:x]', { Name: 'x' }],
    ['{{.a}}', '1', { a: 1, b: undefined }],
    ['{{.b}}', '<no value>', { a: 1, b: undefined }],
    ['{{.Html}}', '<a&b>'],
  ]);
});

test('numbers print like Go', () => {
  check([
    ['{{.}}', '1500000000', 1500000000],
    ['{{.}}', '1.5000000005e+09', 1500000000.5],
    ['{{.}}', '250000000000000000000', 2.5e20], // integral, so an integer
    ['{{.}}', '1.2345675e+06', 1234567.5],
    ['{{.}}', '123456.5', 123456.5],
    ['{{.}}', '1e-05', 0.00001],
    ['{{.}}', '0.0001', 0.0001],
    ['{{.}}', '-0.5', -0.5],
    ['{{1.0}} {{1e0}} {{1.5e3}} {{1e6}} {{1e21}}', '1 1 1500 1e+06 1e+21'],
    ['{{0x1F}} {{0o17}} {{0b101}} {{1_000}} {{017}} {{-7}} {{+5}}', '31 15 5 1000 15 -7 5'],
    ["{{'a'}} {{'\\n'}} {{'\\x41'}} {{'é'}}", '97 10 65 233'],
    ['{{.5}} {{-.5}} {{5.}} {{0x1p4}}', '0.5 -0.5 5 16'],
  ]);
});

test('strings: interpreted and raw literals', () => {
  check([
    ['{{"a\\tb"}}', 'a\tb'],
    ['{{"\\x41\\101\\u00e9\\U0001F600"}}', 'AAé😀'],
    ['{{"quote \\" backslash \\\\"}}', 'quote " backslash \\'],
    ['{{`raw\\n"x"`}}', 'raw\\n"x"'],
    ['{{`multi\nline`}}', 'multi\nline'],
  ]);
});

test('variables', () => {
  check([
    ['{{$x := .Name}}{{$x}}', 'web'],
    ['{{$x := 1}}{{$x}}{{$x = 2}}{{$x}}', '12'],
    ['{{$x := 1}}{{$x := 2}}{{$x}}', '2'],
    ['{{$c := .Config}}{{$c.Cmd}} {{index $c.Labels "a"}}', '[nginx -g daemon off;] first'],
    ['{{if true}}{{$y := 3}}{{$y}}{{end}}', '3'],
    ['{{with $x := .State}}{{$x.Status}}/{{.Pid}}{{end}}', 'running/42'],
    ['{{range .RepoTags}}{{$.Name}}:{{.}} {{end}}', 'web:nginx:latest web:nginx:1.27 '],
    ['{{$i := 0}}{{range $i = .RepoTags}}{{end}}{{$i}}', 'nginx:1.27'],
    ['{{$k := 0}}{{$v := 0}}{{range $k, $v = .Labels}}{{end}}{{$k}}={{$v}}', 'com.example.b=two'],
  ]);
});

test('pipelines and parentheses', () => {
  check([
    ['{{.Name | printf "%s!"}}', 'web!'],
    ['{{.Name | printf "%s!" | printf "%q"}}', '"web!"'],
    ['{{"x" | printf "%s-%s" "y"}}', 'y-x'],
    ['{{1 | printf "%d"}}', '1'],
    ['{{.Name | len}}', '3'],
    ['{{(len .Name)}} {{len (index .RepoTags 0)}}', '3 12'],
    ['{{(.State).Status}}', 'running'],
    ['{{(index .Config.Labels "z")}}', 'last'],
    ['{{.RepoTags | join}}', 'ERR template: :1:14: executing "" at <join>: wrong number of args for join: want 2 got 1'],
  ]);
});

test('if / else if / else', () => {
  check([
    ['{{if .Running}}up{{end}}', 'up'],
    ['{{if .Paused}}paused{{else}}not paused{{end}}', 'not paused'],
    ['{{if eq .State.Status "running"}}up{{else if eq .State.Status "exited"}}down{{else}}?{{end}}', 'up'],
    ['{{if eq .State.Status "exited"}}down{{else if .Running}}R{{else}}?{{end}}', 'R'],
    ['{{if .Missing}}a{{else if .Nil}}b{{else}}c{{end}}', 'c'],
    // Go's truthiness: false, 0, "", nil and empty collections are false.
    [
      '{{if .Zero}}T{{else}}F{{end}}{{if .Blank}}T{{else}}F{{end}}{{if .Empty}}T{{else}}F{{end}}' +
        '{{if .EmptyMap}}T{{else}}F{{end}}{{if .Nil}}T{{else}}F{{end}}{{if .Missing}}T{{else}}F{{end}}' +
        '{{if .Size}}T{{end}}{{if .Ratio}}T{{end}}{{if .Labels}}T{{end}}{{if 0.0}}T{{else}}F{{end}}',
      'FFFFFFTTTF',
    ],
  ]);
});

test('with / else with / else', () => {
  check([
    ['{{with .State}}{{.Status}}{{end}}', 'running'],
    ['{{with .Missing}}x{{else}}none{{end}}', 'none'],
    ['{{with .Blank}}x{{else with .Name}}<{{.}}>{{else}}none{{end}}', '<web>'],
    ['{{with 0}}a{{else with 0}}b{{else with 3}}{{.}}{{end}}', '3'],
    ['{{with 0}}a{{else with ""}}b{{else}}c{{end}}', 'c'],
    // only `if` chains with `else if`, only `with` chains with `else with`
    ['{{if 0}}a{{else with 2}}{{.}}{{end}}', 'ERR template parsing error: template: :1: unexpected <with> in input'],
  ]);
});

test('range', () => {
  check([
    ['{{range .RepoTags}}[{{.}}]{{end}}', '[nginx:latest][nginx:1.27]'],
    ['{{range $i, $t := .RepoTags}}{{$i}}={{$t}} {{end}}', '0=nginx:latest 1=nginx:1.27 '],
    ['{{range $t := .RepoTags}}{{$t}};{{end}}', 'nginx:latest;nginx:1.27;'],
    // objects are visited in sorted key order, like Go maps
    ['{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}', 'com.example.a=one;com.example.b=two;'],
    ['{{range .Config.Labels}}{{.}} {{end}}', 'first last '],
    ['{{range .Empty}}x{{else}}empty{{end}}', 'empty'],
    ['{{range .EmptyMap}}x{{else}}empty{{end}}', 'empty'],
    ['{{range .Missing}}x{{else}}none{{end}}', 'none'],
    ['{{range .Nil}}x{{else}}none{{end}}', 'none'],
    ['{{range .Mixed}}{{.}},{{end}}', 'a,<no value>,1,1.5,true,map[k:v],[x],'],
    ['{{range 3}}{{.}}{{end}}', '012'],
    ['{{range $i := 2}}<{{$i}}>{{end}}', '<0><1>'],
    ['{{range 0}}x{{else}}none{{end}}', 'none'],
    ['{{range .RepoTags}}{{if eq . "nginx:latest"}}{{continue}}{{end}}{{.}}{{end}}', 'nginx:1.27'],
    ['{{range .RepoTags}}{{.}}{{break}}{{end}}', 'nginx:latest'],
    ['{{range 4}}{{if eq . 2}}{{break}}{{end}}{{.}}{{end}}', '01'],
    ['{{range 2}}{{with 1}}{{break}}{{end}}x{{end}}y', 'y'],
    ['{{range .RepoTags}}{{range 2}}{{continue}}{{end}}-{{end}}', '--'],
    ['{{range $i, $e := 3}}{{end}}', 'ERR template: :1:18: executing "" at <3>: can\'t use 3 to iterate over more than one variable'],
    ['{{range .Name}}x{{end}}', 'ERR template: :1:8: executing "" at <.Name>: range can\'t iterate over web'],
  ]);
});

test('comparison functions', () => {
  check([
    ['{{eq .Name "web"}} {{eq .Size 1234}} {{eq .Ratio 0.25}} {{eq .Running true}}', 'true true true true'],
    ['{{eq .Name "a" "b" "web"}} {{eq 1 2 3}}', 'true false'],
    ['{{ne .Name "db"}} {{lt 1 2}} {{le 2 2}} {{gt "b" "a"}} {{ge 1.5 2.5}}', 'true true true true false'],
    ['{{eq .Missing "x"}} {{eq .Missing .Nil}} {{eq nil nil}} {{ne .Nil "x"}}', 'false true true true'],
    ['{{lt "Z" "a"}} {{lt "é" "z"}}', 'true false'],
    ['{{eq 1 "a"}}', 'ERR template: :1:2: executing "" at <eq 1 "a">: error calling eq: incompatible types for comparison'],
    ['{{eq .Size 1.0}}', 'ERR template: :1:2: executing "" at <eq .Size 1.0>: error calling eq: incompatible types for comparison'],
    ['{{lt 1 1.5}}', 'ERR template: :1:2: executing "" at <lt 1 1.5>: error calling lt: incompatible types for comparison'],
    ['{{lt true false}}', 'ERR template: :1:2: executing "" at <lt true false>: error calling lt: invalid type for comparison'],
    ['{{lt .Missing 1}}', 'ERR template: :1:2: executing "" at <lt .Missing 1>: error calling lt: invalid type for comparison'],
    ['{{eq .Name}}', 'ERR template: :1:2: executing "" at <eq .Name>: error calling eq: missing argument for comparison'],
    [
      '{{eq .RepoTags .RepoTags}}',
      'ERR template: :1:2: executing "" at <eq .RepoTags .RepoTags>: error calling eq: non-comparable type [nginx:latest nginx:1.27]: []string',
    ],
  ]);
});

test('logic functions', () => {
  check([
    ['{{and 1 0 2}} {{and 1 2}} {{or 0 "" 3}} {{or 0 ""}} {{not 0}} {{not "x"}}', '0 2 3  true false'],
    ['{{and .Running .Name}} {{or .Missing .Name}} {{not .Nil}} {{and .Nil .Name}}', 'web web true <no value>'],
    ['{{if and .Running (eq .State.Status "running")}}ok{{end}}', 'ok'],
    // and/or stop evaluating at the deciding argument
    ['{{or .Name (index .Missing 1)}} {{and .Blank (index .Missing 1)}}|', 'web |'],
  ]);
});

test('len, index and slice', () => {
  check([
    ['{{len .RepoTags}} {{len .Labels}} {{len .Name}} {{len "héllo"}} {{len .Empty}}', '2 2 3 6 0'],
    ['{{index .RepoTags 1}} {{index .Labels "com.example.a"}} {{index .Config.Cmd 2}}', 'nginx:1.27 one daemon off;'],
    ['{{index .Labels "nope"}}|{{index . "Config" "Labels" "z"}}', '<no value>|last'],
    ['{{index .Name 1}}', '101'],
    ['{{slice .Name 1}} {{slice .Name 1 2}} {{slice .RepoTags 1}} {{slice .Config.Cmd 0 2}}', 'eb e [nginx:1.27] [nginx -g]'],
    ['{{len 3}}', 'ERR template: :1:2: executing "" at <len 3>: error calling len: len of type int'],
    ['{{len .Nil}}', 'ERR template: :1:2: executing "" at <len .Nil>: error calling len: len of nil pointer'],
    ['{{index .RepoTags 5}}', 'ERR template: :1:2: executing "" at <index .RepoTags 5>: error calling index: index out of range: 5'],
    ['{{index .RepoTags 2}}', 'ERR template: :1:2: executing "" at <index .RepoTags 2>: error calling index: reflect: slice index out of range'],
    ['{{index .RepoTags "a"}}', 'ERR template: :1:2: executing "" at <index .RepoTags "a">: error calling index: cannot index slice/array with type string'],
    ['{{index .Labels 1}}', 'ERR template: :1:2: executing "" at <index .Labels 1>: error calling index: value has type int; should be string'],
    ['{{index nil 1}}', 'ERR template: :1:2: executing "" at <index nil 1>: error calling index: index of untyped nil'],
    ['{{index .Running 1}}', "ERR template: :1:2: executing \"\" at <index .Running 1>: error calling index: can't index item of type bool"],
    ['{{slice .Name 2 1}}', 'ERR template: :1:2: executing "" at <slice .Name 2 1>: error calling slice: invalid slice index: 2 > 1'],
    ['{{slice .Name 1 2 3}}', 'ERR template: :1:2: executing "" at <slice .Name 1 2 3>: error calling slice: cannot 3-index slice a string'],
  ]);
});

test('print, printf and println', () => {
  check([
    ['{{print 1 2 "a" 3 "b" "c"}}', '1 2a3bc'],
    ['{{print nil 1 .Missing}}', '<nil> 1 <nil>'],
    ['{{println 1 "a"}}|', '1 a\n|'],
    ['{{println}}|', '\n|'],
    ['{{printf "%s is %d bytes" .Name .Size}}', 'web is 1234 bytes'],
    ['{{printf "%-8s|%8s|%5d|%-5d|%05d" .Name .Name 42 42 -42}}', 'web     |     web|   42|42   |-0042'],
    ['{{printf "%v %v %v %v" .RepoTags .Labels .Running .Ratio}}', '[nginx:latest nginx:1.27] map[com.example.a:one com.example.b:two] true 0.25'],
    ['{{printf "%q %q" .Name .RepoTags}}', '"web" ["nginx:latest" "nginx:1.27"]'],
    ['{{printf "%t %x %X %o %b %c %U" true 255 255 8 5 65 65}}', 'true ff FF 10 101 A U+0041'],
    ['{{printf "%x|% x|%#x|%X" "hi" "hi" "hi" "é"}}', '6869|68 69|0x6869|C3A9'],
    ['{{printf "%f|%.2f|%8.3f|%-8.1f|%e|%.3e|%g|%G" 3.14159 3.14159 3.14159 2.5 1234.5678 1234.5678 1234.5678 1e-7}}',
      '3.141590|3.14|   3.142|2.5     |1.234568e+03|1.235e+03|1234.5678|1E-07'],
    ['{{printf "%.0f %.0f %.1f %.2f %.3g" 0.5 2.5 0.25 1.005 1234.5678}}', '0 2 0.2 1.00 1.23e+03'],
    ['{{printf "%+d|% d|%+.1f|%08.3f|%x" 5 5 1.25 -3.14159 3.5}}', '+5| 5|+1.2|-003.142|0x1.cp+01'],
    ['{{printf "%.2s|%5.1q|%06s|%T|%T|%T" "héllo" "abc" "ab" 1 1.5 .RepoTags}}', 'hé|  "a"|0000ab|int|float64|[]string'],
    ['{{printf "%*d|%-*d|%.*f" 5 1 4 2 2 3.14159}}', '    1|2   |3.14'],
    ['{{printf "%[2]d %[1]d" 1 2}}', '2 1'],
    ['{{printf "%d%%" 50}}', '50%'],
    ['{{printf "%5v|%d" .RepoTags .Mixed}}', '[nginx:latest nginx:1.27]|[%!d(string=a) <nil> 1 %!d(float64=1.5) %!d(bool=true) map[%!d(string=k):%!d(string=v)] [%!d(string=x)]]'],
    // Go's error notations
    ['{{printf "%d %d" 1}}', '1 %!d(MISSING)'],
    ['{{printf "%d" 1 "x"}}', '1%!(EXTRA string=x)'],
    ['{{printf "%d" 1.5}} {{printf "%s" 1}} {{printf "%z" 1}}', '%!d(float64=1.5) %!s(int=1) %!z(int=1)'],
    ['{{printf "%d %s" nil .Missing}}', '%!d(<nil>) %!s(<nil>)'],
    ['{{printf "%"}} {{printf "%!"}}', '%!(NOVERB) %!!(MISSING)'],
  ]);
});

test('html, js, urlquery and call', () => {
  check([
    ['{{html "<a href=\\"x\\">&\'"}}', '&lt;a href=&#34;x&#34;&gt;&amp;&#39;'],
    ['{{html .Missing}}', '&lt;no value&gt;'],
    ['{{js "a<b>\\"c\'=\\\\"}}', 'a\\u003Cb\\u003E\\"c\\\'\\u003D\\\\'],
    ['{{urlquery "a b&c=d/é"}}', 'a+b%26c%3Dd%2F%C3%A9'],
    ['{{call .Adder 2 3}}', '5', { Adder: () => (a: number, b: number) => a + b }],
    ['{{call .Name}}', 'ERR template: :1:2: executing "" at <call .Name>: error calling call: non-function .Name of type string'],
    ['{{call .Missing}}', 'ERR template: :1:2: executing "" at <call .Missing>: error calling call: call of nil'],
  ]);
});

test('function-valued properties act as methods', () => {
  const ctx = {
    Labels: 'a=1,b=2',
    Label(name: string) {
      return name === 'a' ? '1' : '';
    },
    Fail() {
      throw new Error('boom');
    },
  };
  check([
    ['{{.Label "a"}}|{{.Label "b"}}|{{"a" | .Label}}', '1||1', ctx],
    ['{{.Fail}}', 'ERR template: :1:2: executing "" at <.Fail>: error calling Fail: boom', ctx],
    ['{{.Labels 1}}', 'ERR template: :1:2: executing "" at <.Labels>: Labels is not a method but has arguments', ctx],
  ]);
  class Row {
    readonly id = 'abcdef';
    get Short(): string {
      return this.id.slice(0, 3);
    }
    Upper(s: string): string {
      return s.toUpperCase();
    }
  }
  check([
    ['{{.Short}} {{.Upper "x"}} {{.id}} {{.toString}} {{.constructor}}', 'abc X abcdef <no value> <no value>', new Row()],
  ]);
});

test('docker functions', () => {
  check([
    ['{{json .State}}', '{"Status":"running","Pid":42}'],
    ['{{json .Config}}', '{"Cmd":["nginx","-g","daemon off;"],"Env":null,"Labels":{"z":"last","a":"first"}}'],
    ['{{json .Html}} {{json .Ratio}} {{json .Missing}} {{json .Empty}}', '"<a&b>" 0.25 null []'],
    ['{{json 1e21}} {{json 0.0000001}} {{json "\\u2028\\b\\f\\x01\\t"}}', '1e+21 1e-7 "\\u2028\\b\\f\\u0001\\t"'],
    ['{{json .}}', '{"a":[1,{"b":true}],"c":"x"}', { a: [1, { b: true }], c: 'x', d: undefined }],
    ['{{join .RepoTags ", "}}', 'nginx:latest, nginx:1.27'],
    ['{{join .Missing ","}}|{{join .Empty ","}}', '|'],
    ['{{split "a,b,,c" ","}} {{len (split "" ",")}} {{split "ab" ""}}', '[a b  c] 1 [a b]'],
    ['{{range split .ID ":"}}<{{.}}>{{end}}', '<sha256><abc>'],
    ['{{lower "ÀBC"}} {{upper .Name}} {{upper "straße"}}', 'àbc WEB STRAßE'],
    ['{{title "hello wORLD-foo_bar x.y"}}', 'Hello WORLD-Foo_bar X.Y'],
    ['{{truncate .ID 6}}|{{truncate .Name 10}}|{{truncate "héllo" 2}}', 'sha256|web|h\uFFFD'],
    ['{{pad .Name 2 3}}|{{pad "" 2 3}}|', '  web   ||'],
    ['{{join .Mixed ","}}', 'ERR template: :1:7: executing "" at <.Mixed>: wrong type for value; expected []string; got []interface {}'],
    ['{{join "a" ","}}', 'ERR template: :1:7: executing "" at <"a">: can\'t handle "a" for arg of type []string'],
    ['{{upper .Missing}}', 'ERR template: :1:8: executing "" at <.Missing>: invalid value; expected string'],
    ['{{upper .Nil}}', 'ERR template: :1:8: executing "" at <.Nil>: wrong type for value; expected string; got interface {}'],
    ['{{upper 5}}', 'ERR template: :1:8: executing "" at <5>: expected string; found 5'],
    ['{{upper .Size}}', 'ERR template: :1:8: executing "" at <.Size>: wrong type for value; expected string; got int'],
    ['{{truncate .Name 2.0}}', 'we'],
    ['{{truncate .Name 2.5}}', 'ERR template: :1:17: executing "" at <2.5>: expected integer; found 2.5'],
  ]);
});

test('define, template and block', () => {
  check([
    ['{{define "T"}}<{{.}}>{{end}}{{template "T" .Name}}', '<web>'],
    ['{{define "T"}}[{{$}}]{{end}}{{template "T" 5}}{{template "T"}}', '[5][<no value>]'],
    ['{{block "B" .Name}}[{{.}}]{{end}} {{template "B" 2}}', '[web] [2]'],
    ['{{template "nope"}}', 'ERR template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined'],
  ]);
});

test('execution errors carry Go-style positions', () => {
  check([
    ['{{.Name.Foo}}', "ERR template: :1:7: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type string"],
    ['{{.RepoTags.Foo}}', "ERR template: :1:11: executing \"\" at <.RepoTags.Foo>: can't evaluate field Foo in type []string"],
    ['{{.Nil.Foo}}', 'ERR template: :1:6: executing "" at <.Nil.Foo>: nil pointer evaluating interface {}.Foo'],
    ['{{.Foo}}', "ERR template: :1:2: executing \"\" at <.Foo>: can't evaluate field Foo in type string", 'str'],
    ['a\n{{.Name.Foo}}', "ERR template: :2:7: executing \"\" at <.Name.Foo>: can't evaluate field Foo in type string"],
    ['é{{.Name.X}}', "ERR template: :1:9: executing \"\" at <.Name.X>: can't evaluate field X in type string"],
    ['{{if .Name}}\n{{index .Name 99}}\n{{end}}', 'ERR template: :2:2: executing "" at <index .Name 99>: error calling index: index out of range: 99'],
    ['{{nil}}', 'ERR template: :1:2: executing "" at <nil>: nil is not a command'],
    ['{{(.Name) 1}}', 'ERR template: :1:2: executing "" at <(.Name) 1>: can\'t give argument to non-function .Name'],
    ['{{.Name 1}}', 'ERR template: :1:2: executing "" at <.Name>: Name is not a method but has arguments'],
    ['{{len}}', 'ERR template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 0'],
    ['{{printf}}', 'ERR template: :1:2: executing "" at <printf>: wrong number of args for printf: want at least 1 got 0'],
    ['{{printf .Size}}', 'ERR template: :1:9: executing "" at <.Size>: wrong type for value; expected string; got int'],
    ['{{pad "a" -1 0}}', 'ERR template: :1:2: executing "" at <pad "a" -1 0>: error calling pad: strings: negative Repeat count'],
    ['{{$x := 1}}{{$x.Foo}}', "ERR template: :1:15: executing \"\" at <$x.Foo>: can't evaluate field Foo in type int"],
    ['{{18446744073709551615}}', 'ERR template: :1:2: executing "" at <18446744073709551615>: 18446744073709551615 overflows int'],
  ]);
});

test('parse errors', () => {
  const cases: [string, string][] = [
    ['{{foo}}', 'template: :1: function "foo" not defined'],
    ['{{.Name}', "template: :1: bad character U+007D '}'"],
    ['{{index .A }x}}', 'template: :1: unexpected "}" in operand'],
    ['{{.Name', 'template: :1: unclosed action'],
    ['{{.Name\n', 'template: :2: unclosed action started at :1'],
    ['{{(.Name}}', 'template: :1: unclosed left paren'],
    ['{{.Name)}}', 'template: :1: unexpected right paren'],
    ['{{if .Name}}x', 'template: :1: unexpected EOF'],
    ['{{end}}', 'template: :1: unexpected {{end}}'],
    ['{{else}}', 'template: :1: unexpected {{else}}'],
    ['x\n\n{{end}}', 'template: :3: unexpected {{end}}'],
    ['{{if}}{{end}}', 'template: :1: missing value for if'],
    ['{{}}', 'template: :1: missing value for command'],
    ['{{range .A}}{{else}}{{else}}{{end}}', 'template: :1: expected end; found {{else}}'],
    ['{{break}}', 'template: :1: {{break}} outside {{range}}'],
    ['{{range 2}}{{else}}{{continue}}{{end}}', 'template: :1: {{continue}} outside {{range}}'],
    ['{{range 1}}{{break 1}}{{end}}', 'template: :1: unexpected "1" in {{break}}'],
    ['{{$x}}', 'template: :1: undefined variable "$x"'],
    ['{{with $x := 1}}{{end}}{{$x}}', 'template: :1: undefined variable "$x"'],
    ['{{$x, $y := 1}}', 'template: :1: too many declarations in command'],
    ['{{range $x, 3 := .}}{{end}}', 'template: :1: range can only initialize variables'],
    ['{{3 | 4}}', 'template: :1: non executable command in pipeline stage 2'],
    ['{{"a".Foo}}', 'template: :1: unexpected . after term "\\"a\\""'],
    ['{{"unterminated}}', 'template: :1: unterminated quoted string'],
    ['{{`unterminated}}', 'template: :1: unterminated raw quoted string'],
    ["{{'ab'}}", 'template: :1: malformed character constant: \'ab\''],
    ['{{"\\q"}}', 'template: :1: invalid syntax'],
    ['{{/* x', 'template: :1: unclosed comment'],
    ['{{/* x */ }}', 'template: :1: comment ends before closing delimiter'],
    ['{{089}}', 'template: :1: integer overflow: "089"'],
    ['{{0x}}', 'template: :1: illegal number syntax: "0x"'],
    ['{{1e}}', 'template: :1: illegal number syntax: "1e"'],
    ['{{3x}}', 'template: :1: bad number syntax: "3x"'],
    ['{{#}}', 'template: :1: unexpected "#" in command'],
    ['{{é}}', 'template: :1: function "é" not defined'],
    ['{{\u00a0}}', 'template: :1: unrecognized character in action: U+00A0'],
    ['{{$x:1}}', 'template: :1: undefined variable "$x"'],
    ['{{$x := 1}}{{$x :1}}', 'template: :1: expected :='],
    ['{{.Name\n}}x{{.Name\n', 'template: :3: unclosed action started at :2'],
    ['{{if .A}}\n{{"x}}\n{{end}}', 'template: :2: unterminated quoted string'],
    ['{{define "a"}}A{{end}}{{define "a"}}B{{end}}', 'template: :1: template: multiple definition of template "a"'],
  ];
  for (const [tmpl, message] of cases) {
    assert.throws(
      () => parseTemplate(tmpl),
      (e: unknown) => {
        assert.ok(isBerthError(e, ErrorCode.InvalidArgument));
        assert.equal(e.message, `template parsing error: ${message}`, `template ${JSON.stringify(tmpl)}`);
        return true;
      },
    );
  }
});

test('execution errors are InvalidArgument BerthErrors', () => {
  const t = parseTemplate('{{.Name.Foo}}');
  assert.throws(
    () => t.execute({ Name: 'x' }),
    (e: unknown) => isBerthError(e, ErrorCode.InvalidArgument) && e.message.startsWith('template: :1:7: executing ""'),
  );
});

test('a parsed template can be executed many times', () => {
  const t = parseTemplate('{{$x := .}}{{range .}}{{.}}{{end}}|{{len $x}}');
  assert.equal(t.execute(['a', 'b']), 'ab|2');
  assert.equal(t.execute([]), '|0');
});
