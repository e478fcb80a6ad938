import { ApiClient, ApiError, ConnectError } from '../api-client/client.ts';
import { CliError, type Command, HelpRequested, type Io, UsageError } from './command.ts';

const DEFAULT_HOST = 'unix:///run/berth/berth.sock';

/** Commands load lazily: a call pays only for the module it runs. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  'image ls': () => import('./commands/images.ts').then((m) => m.imageLs),
  'image inspect': () => import('./commands/images.ts').then((m) => m.imageInspect),
  'image tag': () => import('./commands/images.ts').then((m) => m.imageTag),
  'image rm': () => import('./commands/images.ts').then((m) => m.imageRm),
  'image history': () => import('./commands/images.ts').then((m) => m.imageHistory),
  'image prune': () => import('./commands/images.ts').then((m) => m.imagePrune),
  'image import': () => import('./commands/images.ts').then((m) => m.imageImport),
  'image save': () => import('./commands/images.ts').then((m) => m.imageSave),
  'image load': () => import('./commands/images.ts').then((m) => m.imageLoad),
  'inspect': () => import('./commands/images.ts').then((m) => m.inspect),
  'image build': () => import('./commands/build.ts').then((m) => m.build),
  'builder prune': () => import('./commands/builder.ts').then((m) => m.builderPrune),
  'builder du': () => import('./commands/builder.ts').then((m) => m.builderDu),
  'image pull': () => import('./commands/pull-push.ts').then((m) => m.pull),
  'image push': () => import('./commands/pull-push.ts').then((m) => m.push),
  'container run': () => import('./commands/containers.ts').then((m) => m.run),
  'container create': () => import('./commands/containers.ts').then((m) => m.create),
  'container start': () => import('./commands/containers.ts').then((m) => m.startCmd),
  'container stop': () => import('./commands/containers.ts').then((m) => m.stop),
  'container restart': () => import('./commands/containers.ts').then((m) => m.restart),
  'container kill': () => import('./commands/containers.ts').then((m) => m.kill),
  'container pause': () => import('./commands/containers.ts').then((m) => m.pause),
  'container unpause': () => import('./commands/containers.ts').then((m) => m.unpause),
  'container rm': () => import('./commands/containers.ts').then((m) => m.rm),
  'container wait': () => import('./commands/containers.ts').then((m) => m.wait),
  'container rename': () => import('./commands/containers.ts').then((m) => m.rename),
  'container logs': () => import('./commands/containers.ts').then((m) => m.logs),
  'container exec': () => import('./commands/exec.ts').then((m) => m.exec),
  'container attach': () => import('./commands/exec.ts').then((m) => m.attach),
  'container ls': () => import('./commands/containers.ts').then((m) => m.ps),
  'container top': () => import('./commands/container-ops.ts').then((m) => m.top),
  'container stats': () => import('./commands/container-ops.ts').then((m) => m.stats),
  'container update': () => import('./commands/container-ops.ts').then((m) => m.update),
  'container diff': () => import('./commands/container-fs.ts').then((m) => m.diff),
  'container commit': () => import('./commands/container-fs.ts').then((m) => m.commit),
  'container export': () => import('./commands/container-fs.ts').then((m) => m.exportCmd),
  'container cp': () => import('./commands/container-fs.ts').then((m) => m.cp),
  'version': () => import('./commands/system.ts').then((m) => m.version),
  'login': () => import('./commands/registry-auth.ts').then((m) => m.login),
  'logout': () => import('./commands/registry-auth.ts').then((m) => m.logout),
  'search': () => import('./commands/registry-auth.ts').then((m) => m.search),
  'manifest inspect': () => import('./commands/manifest.ts').then((m) => m.manifestInspect),
  'manifest create': () => import('./commands/manifest.ts').then((m) => m.manifestCreate),
  'manifest annotate': () => import('./commands/manifest.ts').then((m) => m.manifestAnnotate),
  'manifest push': () => import('./commands/manifest.ts').then((m) => m.manifestPush),
  'manifest rm': () => import('./commands/manifest.ts').then((m) => m.manifestRm),
  'system info': () => import('./commands/system.ts').then((m) => m.info),
  'system df': () => import('./commands/system.ts').then((m) => m.df),
  'system prune': () => import('./commands/system.ts').then((m) => m.prune),
  'system events': () => import('./commands/system.ts').then((m) => m.events),
  'volume create': () => import('./commands/volumes.ts').then((m) => m.volumeCreate),
  'volume ls': () => import('./commands/volumes.ts').then((m) => m.volumeLs),
  'volume inspect': () => import('./commands/volumes.ts').then((m) => m.volumeInspect),
  'volume rm': () => import('./commands/volumes.ts').then((m) => m.volumeRm),
  'volume prune': () => import('./commands/volumes.ts').then((m) => m.volumePrune),
  'container port': () => import('./commands/containers.ts').then((m) => m.port),
  'network create': () => import('./commands/networks.ts').then((m) => m.networkCreate),
  'network ls': () => import('./commands/networks.ts').then((m) => m.networkLs),
  'network inspect': () => import('./commands/networks.ts').then((m) => m.networkInspect),
  'network rm': () => import('./commands/networks.ts').then((m) => m.networkRm),
  'network prune': () => import('./commands/networks.ts').then((m) => m.networkPrune),
  'network connect': () => import('./commands/networks.ts').then((m) => m.networkConnect),
  'network disconnect': () => import('./commands/networks.ts').then((m) => m.networkDisconnect),
  'registry serve': () => import('./commands/registry.ts').then((m) => m.registryServe),
  'registry gc': () => import('./commands/registry.ts').then((m) => m.registryGc),
};

/** Docker's short forms and synonyms. */
const ALIASES: Record<string, string> = {
  diff: 'container diff', commit: 'container commit', export: 'container export', cp: 'container cp',
  images: 'image ls', 'image list': 'image ls', 'image remove': 'image rm', rmi: 'image rm', tag: 'image tag',
  build: 'image build', 'buildx build': 'image build', 'builder build': 'image build',
  history: 'image history', import: 'image import', pull: 'image pull', push: 'image push', save: 'image save', load: 'image load',
  info: 'system info', events: 'system events',
  run: 'container run', create: 'container create', start: 'container start', stop: 'container stop', restart: 'container restart',
  kill: 'container kill', pause: 'container pause', unpause: 'container unpause', rm: 'container rm', 'container remove': 'container rm',
  wait: 'container wait', rename: 'container rename', logs: 'container logs', ps: 'container ls', 'container ps': 'container ls',
  'container list': 'container ls', exec: 'container exec', attach: 'container attach',
  'volume list': 'volume ls', 'volume remove': 'volume rm',
  'network list': 'network ls', 'network remove': 'network rm', port: 'container port',
  top: 'container top', stats: 'container stats', update: 'container update',
};

const USAGE = `Usage:  berth [OPTIONS] COMMAND

A container engine that speaks the Docker Engine API.

Common Commands:
  run         Create and run a new container from an image
  build       Build an image from a Dockerfile
  exec        Execute a command in a running container
  ps          List containers
  images      List images
  inspect     Return low-level information on objects
  version     Show the berth version information
  info        Display system-wide information

Management Commands:
  builder     Manage builds (prune, du)
  container   Manage containers
  image       Manage images
  manifest    Manage image manifests and manifest lists
  network     Manage networks
  registry    Run berth's own OCI registry (serve, gc)
  system      Manage berth
  volume      Manage volumes

Commands:
  commit      Create a new image from a container's changes
  cp          Copy files/folders between a container and the local filesystem
  diff        Inspect changes to files or directories on a container's filesystem
  events      Get real time events from the server
  export      Export a container's filesystem as a tar archive
  history     Show the history of an image
  import      Import the contents from a tarball to create a filesystem image
  load        Load an image from a tar archive or STDIN
  login       Authenticate to a registry
  logout      Log out from a registry
  port        List port mappings or a specific mapping for the container
  pull        Download an image from a registry
  push        Upload an image to a registry
  rmi         Remove one or more images
  save        Save one or more images to a tar archive (streamed to STDOUT by default)
  search      Search a registry for images
  tag         Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE

Global Options:
  -H, --host string      Daemon socket to connect to (default: $BERTH_HOST, then $DOCKER_HOST, then ${DEFAULT_HOST})
  -v, --version          Print version information and quit
`;

function resolveHost(flag: string | undefined): string {
  const host = flag || process.env.BERTH_HOST || process.env.DOCKER_HOST || DEFAULT_HOST;
  if (host.startsWith('unix://')) return host.slice('unix://'.length);
  if (host.startsWith('/')) return host;
  throw new CliError(`unsupported host "${host}": berth speaks to its daemon over unix:// sockets`);
}

export async function run(argv: string[], io: Io): Promise<number> {
  let host: string | undefined;
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-H' || a === '--host') host = argv[++i];
    else if (a.startsWith('--host=')) host = a.slice(7);
    else if (a.startsWith('-H') && a.length > 2) host = a.slice(2);
    else if (a === '-D' || a === '--debug') continue;
    else if (a === '-v' || a === '--version') return runCommand('version', ['--format', 'berth version {{.Client.Version}}'], host, io);
    else if (a === '-h' || a === '--help') return io.out(USAGE), 0;
    else if (a.startsWith('-')) {
      io.err(`unknown flag: ${a}\nSee 'berth --help'.\n`);
      return 125;
    } else break;
  }
  const rest = argv.slice(i);
  if (rest.length === 0) return io.out(USAGE), 0;
  let name = rest[0];
  let args = rest.slice(1);
  const two = `${rest[0]} ${rest[1] ?? ''}`;
  if (ALIASES[two] || COMMANDS[two]) {
    name = two;
    args = rest.slice(2);
  } else if (rest[0] === 'image' || rest[0] === 'system' || rest[0] === 'container' || rest[0] === 'volume' || rest[0] === 'network' || rest[0] === 'manifest') {
    io.err(rest[1] ? `berth: '${two}' is not a berth command.\nSee 'berth ${rest[0]} --help'\n` : `Usage:  berth ${rest[0]} COMMAND\n`);
    return rest[1] ? 1 : 0;
  }
  name = ALIASES[name] ?? name;
  if (!COMMANDS[name]) {
    io.err(`berth: '${rest[0]}' is not a berth command.\nSee 'berth --help'\n`);
    return 1;
  }
  return runCommand(name, args, host, io);
}

async function runCommand(name: string, args: string[], host: string | undefined, io: Io): Promise<number> {
  const display = `berth ${name}`;
  try {
    const cmd = await COMMANDS[name]();
    let client: ApiClient | undefined;
    const code = await cmd.run({ name: display, args, io, client: () => (client ??= new ApiClient(resolveHost(host))) });
    return code ?? 0;
  } catch (e) {
    if (e instanceof HelpRequested) {
      io.out(e.usage);
      return 0;
    }
    if (e instanceof UsageError || e instanceof CliError) {
      io.err(`${e.message}\n`);
      return e.exitCode;
    }
    if (e instanceof ApiError) {
      io.err(`Error response from daemon: ${e.message}\n`);
      return 1;
    }
    if (e instanceof ConnectError) {
      io.err(`${e.message}\n`);
      return 1;
    }
    if ((e as { code?: string }).code === 'InvalidArgument') {
      io.err(`${(e as Error).message}\n`);
      return 1;
    }
    if ((e as { code?: string }).code === 'EPIPE') return 0;
    io.err(`berth: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

const io: Io = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
  // Touching process.stdin creates its handle (a few ms): only commands that read it pay.
  get stdin() {
    return process.stdin;
  },
  stdout: process.stdout,
  isTTY: Boolean(process.stdout.isTTY),
};
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
});
const code = await run(process.argv.slice(2), io);
// Exit explicitly (a request still open, such as run's wait after a failed start, must not keep
// the CLI alive), but only after stdout has drained, so piped output is never cut short.
if (process.stdout.writableLength > 0) process.stdout.once('drain', () => process.exit(code));
else process.exit(code);
