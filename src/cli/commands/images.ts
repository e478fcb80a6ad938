import { ApiError } from '../../api-client/client.ts';
import { type Command, type CommandContext, CliError, confirm, filtersParam, flags, openInput, requireArgs, writeOutput } from '../command.ts';
import { formatItems } from '../format/table.ts';
import { parseTemplate } from '../format/template.ts';
import { goTime, humanDuration, humanSize } from '../../common/units.ts';

interface ImageSummary {
  Id: string; ParentId: string; RepoTags: string[] | null; RepoDigests: string[] | null; Created: number; Size: number;
  SharedSize: number; Labels: Record<string, string> | null; Containers: number;
}

const IMAGE_HEADERS = {
  ID: 'IMAGE ID', Repository: 'REPOSITORY', Tag: 'TAG', Digest: 'DIGEST', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT',
  Size: 'SIZE', Containers: 'CONTAINERS', VirtualSize: 'VIRTUAL SIZE', SharedSize: 'SHARED SIZE', UniqueSize: 'UNIQUE SIZE',
};

const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** Splits `repo:tag` / `repo@digest` at the right separator (a registry port has a colon too). */
function splitRef(ref: string): { repo: string; rest: string } {
  const at = ref.indexOf('@');
  if (at >= 0) return { repo: ref.slice(0, at), rest: ref.slice(at + 1) };
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? { repo: ref.slice(0, colon), rest: ref.slice(colon + 1) } : { repo: ref, rest: '' };
}

/** One row per repository tag, as the docker CLI expands an image summary. */
function imageRows(images: ImageSummary[], opts: { digests: boolean; trunc: boolean }): Record<string, string>[] {
  const rows: Record<string, string>[] = [];
  const now = Date.now();
  for (const img of images) {
    const tags = new Map<string, string[]>();
    const digests = new Map<string, string[]>();
    for (const t of img.RepoTags ?? []) {
      const { repo, rest } = splitRef(t);
      if (repo === '<none>') continue;
      tags.set(repo, [...(tags.get(repo) ?? []), rest]);
    }
    for (const d of img.RepoDigests ?? []) {
      const { repo, rest } = splitRef(d);
      if (repo === '<none>') continue;
      digests.set(repo, [...(digests.get(repo) ?? []), rest]);
    }
    const row = (repo: string, tag: string, digest: string) => ({
      Containers: img.Containers < 0 ? 'N/A' : String(img.Containers),
      CreatedAt: goTime(img.Created * 1000),
      CreatedSince: `${humanDuration(now - img.Created * 1000)} ago`,
      Digest: digest,
      ID: opts.trunc ? short(img.Id) : img.Id,
      Repository: repo,
      SharedSize: img.SharedSize < 0 ? 'N/A' : humanSize(img.SharedSize),
      Size: humanSize(img.Size),
      Tag: tag,
      UniqueSize: img.SharedSize < 0 ? 'N/A' : humanSize(img.Size - img.SharedSize),
      VirtualSize: humanSize(img.Size),
    });
    for (const [repo, ts] of tags) {
      const ds = opts.digests ? digests.get(repo) ?? [] : [];
      digests.delete(repo);
      for (const t of ts) {
        if (ds.length === 0) rows.push(row(repo, t, '<none>'));
        else for (const d of ds) rows.push(row(repo, t, d));
      }
    }
    for (const [repo, ds] of digests) {
      if (opts.digests) for (const d of ds) rows.push(row(repo, '<none>', d));
      else rows.push(row(repo, '<none>', '<none>'));
    }
    if (tags.size === 0 && (img.RepoDigests ?? []).length === 0) rows.push(row('<none>', '<none>', '<none>'));
  }
  return rows;
}

export const imageLs: Command = {
  usage: `Usage:  berth image ls [OPTIONS] [REPOSITORY[:TAG]]

List images

Aliases:
  berth image ls, berth image list, berth images

Options:
  -a, --all             Show all images (default hides intermediate images)
      --digests         Show digests
  -f, --filter filter   Filter output based on conditions provided
      --format string   Format output using a custom template:
                        'table':            Print output in table format with column headers (default)
                        'table TEMPLATE':   Print output in table format using the given Go template
                        'json':             Print in JSON format
                        'TEMPLATE':         Print output using the given Go template
      --no-trunc        Don't truncate output
  -q, --quiet           Only show image IDs
`,
  description: 'List images',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      all: { type: 'boolean', short: 'a' }, digests: { type: 'boolean' }, filter: { type: 'string', short: 'f', multiple: true },
      format: { type: 'string' }, 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 1, this.usage);
    const filterList = [...(values.filter ?? [])];
    if (positionals[0]) filterList.push(`reference=${positionals[0]}`);
    const images = await ctx.client().json<ImageSummary[]>('GET', '/images/json', { query: { all: values.all, filters: filtersParam(filterList), digests: values.digests } });
    const rows = imageRows(images, { digests: Boolean(values.digests), trunc: !values['no-trunc'] });
    let format = values.format ?? '';
    if (values.quiet) format = '{{.ID}}';
    else if (!format || format === 'table') format = values.digests ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
    ctx.io.out(formatItems(format, rows, IMAGE_HEADERS));
  },
};

/** Prints inspect results: an indented JSON array, or the template once per object. */
function printInspect(ctx: CommandContext, objects: unknown[], format: string | undefined): void {
  if (!format || format === 'json') {
    ctx.io.out(JSON.stringify(objects, null, 4) + '\n');
    return;
  }
  const tmpl = parseTemplate(format.replace(/\\t/g, '\t').replace(/\\n/g, '\n'));
  ctx.io.out(objects.map((o) => tmpl.execute(o) + '\n').join(''));
}

async function inspectImages(ctx: CommandContext, names: string[], format: string | undefined, missing: (name: string) => string): Promise<number> {
  if (format) parseTemplate(format);
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const n of names) {
    try {
      found.push(await ctx.client().json('GET', `/images/${encodeURIComponent(n)}/json`));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) errors.push(missing(n));
      else throw e;
    }
  }
  if (found.length > 0 || errors.length === 0) printInspect(ctx, found, format);
  if (errors.length) {
    ctx.io.err(errors.join('\n') + '\n');
    return 1;
  }
  return 0;
}

export const imageInspect: Command = {
  usage: `Usage:  berth image inspect [OPTIONS] IMAGE [IMAGE...]

Display detailed information on one or more images

Options:
  -f, --format string   Format output using a custom template
`,
  description: 'Display detailed information on one or more images',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { format: { type: 'string', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    return inspectImages(ctx, positionals, values.format, (n) => `Error response from daemon: No such image: ${n}`);
  },
};

/** What `inspect` looks for, in docker's order. */
const INSPECT_PATHS: Record<string, (name: string) => string> = {
  container: (n) => `/containers/${n}/json`,
  image: (n) => `/images/${n}/json`,
  network: (n) => `/networks/${n}`,
  volume: (n) => `/volumes/${n}`,
};

export const inspect: Command = {
  usage: `Usage:  berth inspect [OPTIONS] NAME|ID [NAME|ID...]

Return low-level information on objects

Options:
  -f, --format string   Format output using a custom template
      --type string     Return JSON for specified type
`,
  description: 'Return low-level information on objects',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { format: { type: 'string', short: 'f' }, type: { type: 'string' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    const type = values.type ?? '';
    if (!['', ...Object.keys(INSPECT_PATHS)].includes(type)) throw new CliError(`"${type}" is not a valid value for --type`);
    if (values.format) parseTemplate(values.format);
    // Like docker: a container by that name or ID first, then an image, a network, a volume.
    const found: unknown[] = [];
    const missing: string[] = [];
    for (const n of positionals) {
      let obj: unknown;
      for (const kind of type ? [type] : Object.keys(INSPECT_PATHS)) {
        try {
          obj = await ctx.client().json('GET', INSPECT_PATHS[kind](encodeURIComponent(n)));
          break;
        } catch (e) {
          if (!(e instanceof ApiError && e.status === 404)) throw e;
        }
      }
      if (obj === undefined) missing.push(`Error: No such ${type || 'object'}: ${n}`);
      else found.push(obj);
    }
    if (found.length > 0 || missing.length === 0) printInspect(ctx, found, values.format);
    if (missing.length) {
      ctx.io.err(missing.join('\n') + '\n');
      return 1;
    }
    return 0;
  },
};

export const imageTag: Command = {
  usage: `Usage:  berth image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]

Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE

Aliases:
  berth image tag, berth tag
`,
  description: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 2, 2, this.usage);
    const [source, target] = positionals;
    const { repo, rest } = splitRef(target);
    if (target.includes('@')) throw new CliError(`refusing to create a tag with a digest reference`);
    await ctx.client().request('POST', `/images/${encodeURIComponent(source)}/tag`, { query: { repo, tag: rest || undefined } }).then((r) => r.resume());
  },
};

export const imageRm: Command = {
  usage: `Usage:  berth image rm [OPTIONS] IMAGE [IMAGE...]

Remove one or more images

Aliases:
  berth image rm, berth image remove, berth rmi

Options:
  -f, --force      Force removal of the image
      --no-prune   Do not delete untagged parents
`,
  description: 'Remove one or more images',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { force: { type: 'boolean', short: 'f' }, 'no-prune': { type: 'boolean' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    let failed = false;
    for (const name of positionals) {
      try {
        const items = await ctx.client().json<({ Untagged?: string; Deleted?: string })[]>('DELETE', `/images/${encodeURIComponent(name)}`, {
          query: { force: values.force, noprune: values['no-prune'] },
        });
        for (const i of items) ctx.io.out(i.Untagged ? `Untagged: ${i.Untagged}\n` : `Deleted: ${i.Deleted}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        ctx.io.err(`Error response from daemon: ${e.message}\n`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },
};

export const imageHistory: Command = {
  usage: `Usage:  berth image history [OPTIONS] IMAGE

Show the history of an image

Aliases:
  berth image history, berth history

Options:
      --format string   Format output using a custom template
  -H, --human           Print sizes and dates in human readable format (default true)
      --no-trunc        Don't truncate output
  -q, --quiet           Only show image IDs
`,
  description: 'Show the history of an image',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      format: { type: 'string' }, human: { type: 'string', short: 'H' }, 'no-trunc': { type: 'boolean' }, quiet: { type: 'boolean', short: 'q' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const human = values.human === undefined || values.human === 'true';
    const hist = await ctx.client().json<{ Id: string; Created: number; CreatedBy: string; Tags: string[] | null; Size: number; Comment: string }[]>(
      'GET', `/images/${encodeURIComponent(positionals[0])}/history`);
    const trunc = !values['no-trunc'];
    const now = Date.now();
    const rows = hist.map((h) => {
      let createdBy = h.CreatedBy.replace(/\t/g, ' ').replace(/\n/g, ' ');
      if (trunc && [...createdBy].length > 45) createdBy = [...createdBy].slice(0, 44).join('') + '…';
      return {
        ID: h.Id.startsWith('sha256:') && trunc ? short(h.Id) : h.Id,
        CreatedSince: human ? `${humanDuration(now - h.Created * 1000)} ago` : new Date(h.Created * 1000).toISOString().replace('.000Z', 'Z'),
        CreatedAt: new Date(h.Created * 1000).toISOString().replace('.000Z', 'Z'),
        CreatedBy: createdBy,
        Size: human ? humanSize(h.Size) : String(h.Size),
        Comment: h.Comment,
      };
    });
    const format = values.quiet ? '{{.ID}}' : values.format && values.format !== 'table' ? values.format
      : 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
    ctx.io.out(formatItems(format, rows, { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' }));
  },
};

export const imagePrune: Command = {
  usage: `Usage:  berth image prune [OPTIONS]

Remove unused images

Options:
  -a, --all             Remove all unused images, not just dangling ones
      --filter filter   Provide filter values (e.g. "until=<timestamp>")
  -f, --force           Do not prompt for confirmation
`,
  description: 'Remove unused images',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { all: { type: 'boolean', short: 'a' }, filter: { type: 'string', multiple: true }, force: { type: 'boolean', short: 'f' } }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    const warning = values.all
      ? 'WARNING! This will remove all images without at least one container associated to them.'
      : 'WARNING! This will remove all dangling images.';
    if (!values.force && !(await confirm(ctx.io, `${warning}\nAre you sure you want to continue?`))) return 0;
    const reclaimed = await pruneImages(ctx, Boolean(values.all), values.filter ?? []);
    ctx.io.out(`Total reclaimed space: ${humanSize(reclaimed)}\n`);
  },
};

/** Runs an image prune and prints what went; returns bytes reclaimed. */
export async function pruneImages(ctx: CommandContext, all: boolean, filter: string[]): Promise<number> {
  const f = [...filter];
  if (all) f.push('dangling=false');
  const res = await ctx.client().json<{ ImagesDeleted: ({ Untagged?: string; Deleted?: string })[] | null; SpaceReclaimed: number }>(
    'POST', '/images/prune', { query: { filters: filtersParam(f) } });
  if (res.ImagesDeleted?.length) {
    ctx.io.out('Deleted Images:\n');
    for (const i of res.ImagesDeleted) ctx.io.out(i.Untagged ? `untagged: ${i.Untagged}\n` : `deleted: ${i.Deleted}\n`);
    ctx.io.out('\n');
  }
  return res.SpaceReclaimed;
}

export const imageImport: Command = {
  usage: `Usage:  berth image import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]

Import the contents from a tarball to create a filesystem image

Aliases:
  berth image import, berth import

Options:
  -c, --change list       Apply Dockerfile instruction to the created image
  -m, --message string    Set commit message for imported image
      --platform string   Set platform if server is multi-platform capable
`,
  description: 'Import the contents from a tarball to create a filesystem image',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      change: { type: 'string', short: 'c', multiple: true }, message: { type: 'string', short: 'm' }, platform: { type: 'string' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 2, this.usage);
    const [src, target] = positionals;
    if (/^https?:\/\//.test(src)) throw new CliError('berth import takes a file or -, not a URL');
    const stream = src === '-' ? ctx.io.stdin : await openInput(src);
    const res = await ctx.client().request('POST', '/images/create', {
      query: { fromSrc: '-', repo: target, changes: values.change, message: values.message, platform: values.platform },
      stream,
    });
    for await (const m of ctx.client().messages<{ status?: string }>(res)) if (m.status) ctx.io.out(`${m.status}\n`);
  },
};

export const imageSave: Command = {
  usage: `Usage:  berth image save [OPTIONS] IMAGE [IMAGE...]

Save one or more images to a tar archive (streamed to STDOUT by default)

Aliases:
  berth image save, berth save

Options:
  -o, --output string   Write to a file, instead of STDOUT
`,
  description: 'Save one or more images to a tar archive',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { output: { type: 'string', short: 'o' } }, this.usage);
    requireArgs(ctx, positionals, 1, Infinity, this.usage);
    if (!values.output && ctx.io.isTTY) throw new CliError('Cowardly refusing to save to a terminal. Use the -o flag or redirect');
    const res = await ctx.client().request('GET', '/images/get', { query: { names: positionals } });
    try {
      await writeOutput(res, values.output, ctx.io.stdout);
    } catch (e) {
      throw new CliError(`Error: the archive was cut short: ${(e as Error).message}`);
    }
  },
};

export const imageLoad: Command = {
  usage: `Usage:  berth image load [OPTIONS]

Load an image from a tar archive or STDIN

Aliases:
  berth image load, berth load

Options:
  -i, --input string   Read from tar archive file, instead of STDIN
  -q, --quiet          Suppress the load output
`,
  description: 'Load an image from a tar archive or STDIN',
  async run(ctx) {
    const { values, positionals } = flags(ctx, { input: { type: 'string', short: 'i' }, quiet: { type: 'boolean', short: 'q' } }, this.usage);
    requireArgs(ctx, positionals, 0, 0, this.usage);
    if (!values.input && process.stdin.isTTY) throw new CliError('requested load from stdin, but stdin is empty');
    const stream = values.input ? await openInput(values.input) : ctx.io.stdin;
    const res = await ctx.client().request('POST', '/images/load', { query: { quiet: values.quiet }, stream });
    for await (const m of ctx.client().messages<{ stream?: string }>(res)) if (m.stream) ctx.io.out(m.stream);
  },
};
