// `berth login`, `logout` and `search`, as the docker CLI does them: the daemon checks the
// credentials (POST /auth), the CLI keeps them in config.json or the configured credential helper.
import { isBerthError } from '../../common/errors.ts';
import { CredentialStore, DOCKER_HUB_KEY, configKey, encodeRegistryAuth } from '../../distribution/credentials.ts';
import type { Credentials } from '../../distribution/types.ts';
import { type Command, type Io, CliError, flags, requireArgs } from '../command.ts';
import { formatItems } from '../format/table.ts';

/** Credential-store failures (a broken config.json, a helper that fails) as the CLI's error text. */
async function withStore<T>(op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    if (isBerthError(e)) throw new CliError(e.message);
    throw e;
  }
}

/** Docker's server argument: Docker Hub by default, its legacy URL as the key. */
function serverOf(arg: string | undefined): { key: string; display: string } {
  const key = !arg || arg === 'docker.io' ? DOCKER_HUB_KEY : configKey(arg);
  return { key, display: key };
}

async function readPasswordStdin(io: Io): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of io.stdin) parts.push(Buffer.from(c));
  return Buffer.concat(parts).toString('utf8').replace(/[\r\n]+$/, '');
}

export const login: Command = {
  usage: `Usage:  berth login [OPTIONS] [SERVER]

Authenticate to a registry.
Defaults to Docker Hub if no server is specified.

Options:
  -p, --password string   Password or Personal Access Token (PAT)
      --password-stdin    Take the Password or Personal Access Token (PAT) from stdin
  -u, --username string   Username
`,
  description: 'Authenticate to a registry',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      username: { type: 'string', short: 'u' }, password: { type: 'string', short: 'p' }, 'password-stdin': { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 0, 1, this.usage);
    let password = values.password;
    if (password !== undefined) {
      ctx.io.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    }
    if (values['password-stdin']) {
      if (password !== undefined) throw new CliError('--password and --password-stdin are mutually exclusive');
      if (!values.username) throw new CliError('Must provide --username with --password-stdin');
      password = await readPasswordStdin(ctx.io);
    }
    const { key } = serverOf(positionals[0]);
    const store = new CredentialStore();
    let creds: Credentials;
    if (values.username) {
      if (password === undefined || password === '') throw new CliError('Error: Password Required');
      creds = { username: values.username, password };
    } else {
      // As docker: with no username, the stored credentials are tried.
      const stored = await withStore(() => store.get(key));
      if (!stored) throw new CliError('Error: Cannot perform an interactive login from a non TTY device');
      ctx.io.out('Authenticating with existing credentials...\n');
      creds = stored;
    }
    const body: Record<string, string> = { serveraddress: key };
    if (creds.username) body.username = creds.username;
    if (creds.password) body.password = creds.password;
    if (creds.identityToken) body.identitytoken = creds.identityToken;
    const res = await ctx.client().json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', { body });
    const toStore: Credentials = res.IdentityToken ? { username: creds.username, identityToken: res.IdentityToken } : creds;
    const where = await withStore(() => store.store(key, toStore));
    if (!where.helper) {
      ctx.io.err(`\nWARNING! Your credentials are stored unencrypted in '${store.path}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n\n`);
    }
    ctx.io.out(`${res.Status || 'Login Succeeded'}\n`);
  },
};

export const logout: Command = {
  usage: `Usage:  berth logout [SERVER]

Log out from a registry.
If no server is specified, the default is defined by the daemon.
`,
  description: 'Log out from a registry',
  async run(ctx) {
    const { positionals } = flags(ctx, {}, this.usage);
    requireArgs(ctx, positionals, 0, 1, this.usage);
    const { key, display } = serverOf(positionals[0]);
    const removed = await withStore(() => new CredentialStore().erase(key));
    ctx.io.out(removed ? `Removing login credentials for ${display}\n` : `Not logged in to ${display}\n`);
  },
};

const SEARCH_HEADERS = { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' };
const DESCRIPTION_WIDTH = 45;

interface SearchResult { name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }

export const search: Command = {
  usage: `Usage:  berth search [OPTIONS] TERM

Search a registry for images (TERM names the registry: 127.0.0.1:5000/NAME)

Options:
  -f, --filter filter   Filter output based on conditions provided
      --format string   Pretty-print search using a Go template
      --limit int       Max number of search results
      --no-trunc        Don't truncate output
`,
  description: 'Search a registry for images',
  async run(ctx) {
    const { values, positionals } = flags(ctx, {
      filter: { type: 'string', short: 'f', multiple: true }, format: { type: 'string' }, limit: { type: 'string' }, 'no-trunc': { type: 'boolean' },
    }, this.usage);
    requireArgs(ctx, positionals, 1, 1, this.usage);
    const term = positionals[0];
    const filters: Record<string, Record<string, boolean>> = {};
    for (const f of values.filter ?? []) {
      const i = f.indexOf('=');
      if (i <= 0) throw new CliError(`bad format of filter (expected name=value)`);
      (filters[f.slice(0, i)] ??= {})[f.slice(i + 1)] = true;
    }
    if (values.limit !== undefined && !/^\d+$/.test(values.limit)) {
      throw new CliError(`invalid argument "${values.limit}" for "--limit" flag: strconv.ParseInt: parsing "${values.limit}": invalid syntax\nSee '${ctx.name} --help'.`, 125);
    }
    // The credentials stored for the registry the term names, as docker sends them.
    const slash = term.indexOf('/');
    const creds = slash > 0 ? await withStore(() => new CredentialStore().get(term.slice(0, slash))).catch(() => undefined) : undefined;
    const results = await ctx.client().json<SearchResult[]>('GET', '/images/search', {
      query: { term, limit: values.limit, filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined },
      headers: { 'X-Registry-Auth': encodeRegistryAuth(creds) },
    });
    const trunc = !values['no-trunc'];
    const rows = (results ?? []).map((r) => {
      let desc = (r.description ?? '').replace(/\n/g, ' ');
      if (trunc && [...desc].length > DESCRIPTION_WIDTH) desc = [...desc].slice(0, DESCRIPTION_WIDTH - 1).join('') + '…';
      return { Name: r.name, Description: desc, StarCount: String(r.star_count ?? 0), IsOfficial: r.is_official ? '[OK]' : '', IsAutomated: r.is_automated ? '[OK]' : '' };
    });
    const format = values.format && values.format !== 'table' ? values.format : 'table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}';
    ctx.io.out(formatItems(format, rows, SEARCH_HEADERS));
  },
};
