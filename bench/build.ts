// Dockerfile builds: a reference project of about 2,000 small files, 3 RUN steps and two stages,
// built by berth (its CLI hands over the context directory) and, where Debian's docker.io gives a
// Docker engine, by Docker's legacy builder, in one run, interleaved.
// Targets (issue 5): cold build ≤ 1.0x Docker's; a rebuild with no change ≤ 1.0x Docker's and
// under 300 ms end to end; a rebuild after touching one source file ≤ 0.5x Docker's; an extra
// untouched 1 GB directory in the context costs ≤ 0.1x of what it costs Docker's cold build.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BERTH, DOCKER, Daemon, busyboxRootfs, fmt, importBusybox, main, section, startDockerEngine, stats, table, tempDir, timeOk, verdict } from './lib.ts';

const N = Number(process.env.BENCH_N ?? 5);
const FILES = 2000;

const DOCKERFILE = `FROM busybox:latest AS deps
WORKDIR /deps
COPY deps.txt .
RUN for i in $(seq 1 50); do echo "dep $i from $(cat deps.txt)" > dep-$i.txt; done

FROM busybox:latest
WORKDIR /app
COPY --from=deps /deps /deps
COPY src/ ./src/
RUN find src -type f | wc -l > count.txt
RUN cat count.txt && ls /deps | wc -l
CMD ["sh"]
`;

function writeProject(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), DOCKERFILE);
  writeFileSync(join(dir, 'deps.txt'), 'left-pad==1.3.0\n');
  for (let i = 0; i < FILES; i++) {
    const sub = join(dir, 'src', `mod${Math.floor(i / 50)}`);
    if (i % 50 === 0) mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `file${i}.js`), `// module ${i}\nexport const value${i} = ${i};\n`.repeat(4));
  }
}

await main(async () => {
  const dir = tempDir('build');
  const rootfsTar = busyboxRootfs(dir);
  const d = await Daemon.start(dir);
  await importBusybox(d, rootfsTar);
  const engine = await startDockerEngine(dir);
  if (engine) {
    const tar = join(dir, 'busybox-image.tar');
    await timeOk(BERTH, ['save', '-o', tar, 'busybox:latest'], { env: d.env });
    await timeOk(DOCKER, ['load', '-i', tar], { env: engine.env });
  }
  const small = join(dir, 'project');
  writeProject(small);
  const big = join(dir, 'project-big');
  writeProject(big);
  // An untouched 1 GB directory beside the code: no step reads it.
  mkdirSync(join(big, 'data'));
  for (let i = 0; i < 4; i++) execFileSync('dd', ['if=/dev/urandom', `of=${join(big, 'data', `blob${i}`)}`, 'bs=1M', 'count=256', 'status=none']);

  const berth = (ctx: string, ...extra: string[]) => timeOk(BERTH, ['build', '-q', ...extra, '-t', 'bench:app', ctx], { env: d.env });
  const docker = (ctx: string, ...extra: string[]) =>
    timeOk(DOCKER, ['build', '-q', '--network', 'none', ...extra, '-t', 'bench:app', ctx], { env: { ...engine!.env, DOCKER_BUILDKIT: '0' } });
  const tools = [{ name: 'berth', build: berth }, ...(engine ? [{ name: `Docker ${engine.version} (legacy builder)`, build: docker }] : [])];
  console.log(`build: ${FILES} files, 3 RUN steps, 2 stages; ${N} runs of each, interleaved; wall time of the CLI`);

  const cases: { name: string; prepare?: (i: number) => void; args: (ctx: string) => [string, ...string[]] }[] = [
    { name: 'cold (--no-cache)', args: (ctx) => [ctx, '--no-cache'] },
    { name: 'cold, with an untouched 1 GB dir', args: () => [big, '--no-cache'] },
    { name: 'rebuild, no change', args: (ctx) => [ctx] },
    {
      name: 'rebuild, one source file changed',
      prepare: (i) => writeFileSync(join(small, 'src', 'mod7', 'file350.js'), `export const changed = ${i};\n`),
      args: (ctx) => [ctx],
    },
  ];
  const results = new Map<string, number[]>();
  for (const t of tools) {
    await t.build(small); // warm: caches and page cache
    await t.build(big);
  }
  let change = 0;
  const measure = async (c: (typeof cases)[number]) => {
    for (const t of tools) {
      // A new content each time: every tool sees one changed file since its own last build.
      c.prepare?.(change++);
      const [ctx, ...extra] = c.args(small);
      const r = await t.build(ctx, ...extra);
      const key = `${c.name}|${t.name}`;
      results.set(key, [...(results.get(key) ?? []), r.ms]);
    }
  };
  // The two cold cases alternate, so the 1 GB directory's cost is measured under the same conditions.
  for (let i = 0; i < N; i++) for (const c of cases.slice(0, 2)) await measure(c);
  for (const c of cases.slice(2)) for (let i = 0; i < N; i++) await measure(c);
  const med = (c: string, t: string) => stats(results.get(`${c}|${t}`)!).median;
  section('build times (median ms)');
  table(['case', ...tools.map((t) => t.name), ...(engine ? ['berth / Docker'] : [])], cases.map((c) => [
    c.name, ...tools.map((t) => fmt(med(c.name, t.name))), ...(engine ? [fmt(med(c.name, 'berth') / med(c.name, tools[1].name), 2)] : []),
  ]));
  const rebuild = med('rebuild, no change', 'berth');
  verdict(rebuild < 300, `berth rebuild with no change under 300 ms end to end (${fmt(rebuild)} ms)`);
  const overhead = (t: string) => med('cold, with an untouched 1 GB dir', t) - med('cold (--no-cache)', t);
  console.log(`cost of the untouched 1 GB directory: berth ${fmt(overhead('berth'))} ms`);
  if (engine) {
    const dn = tools[1].name;
    verdict(med('cold (--no-cache)', 'berth') <= med('cold (--no-cache)', dn), `cold build ≤ 1.0x Docker's (${fmt(med('cold (--no-cache)', 'berth') / med('cold (--no-cache)', dn), 2)}x)`);
    verdict(rebuild <= med('rebuild, no change', dn), `rebuild with no change ≤ 1.0x Docker's (${fmt(rebuild / med('rebuild, no change', dn), 2)}x)`);
    const ch = med('rebuild, one source file changed', 'berth') / med('rebuild, one source file changed', dn);
    verdict(ch <= 0.5, `rebuild after one changed file ≤ 0.5x Docker's (${fmt(ch, 2)}x)`);
    console.log(`Docker's cost of the same directory: ${fmt(overhead(dn))} ms`);
    verdict(overhead('berth') <= 0.1 * Math.max(overhead(dn), 0), `the 1 GB directory costs berth ≤ 0.1x what it costs Docker (${fmt(overhead('berth'))} vs ${fmt(overhead(dn))} ms)`);
    await engine.stop();
  } else {
    console.log('no Docker engine here (apt-get install docker.io gives one): only berth\'s own figures.');
  }
});
