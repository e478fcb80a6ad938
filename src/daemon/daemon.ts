import { randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, unlink } from 'node:fs/promises';
import type { Server, Socket as NetSocket } from 'node:net';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../common/atomic-file.ts';
import type { Digest } from '../common/digest.ts';
import { errno, failedPrecondition } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { imageRoutes, imageSummary } from '../api/routes/images.ts';
import { systemRoutes } from '../api/routes/system.ts';
import { createApiServer } from '../api/server.ts';
import { ContentStore } from '../content/store.ts';
import { chainIds } from '../images/oci.ts';
import { ImageStore } from '../images/store.ts';
import { Unpacker } from '../images/unpack.ts';
import { openDatabase } from '../metadata/db.ts';
import { GarbageCollector } from '../metadata/gc.ts';
import { LeaseManager } from '../metadata/leases.ts';
import { OverlaySnapshotter } from '../snapshots/overlay.ts';
import { EventBus } from '../services/events.ts';
import { ImageService } from '../services/images.ts';
import { acquirePidfile } from './lock.ts';
import { containerRoutes, containerSummary } from '../api/routes/containers.ts';
import { execRoutes } from '../api/routes/exec.ts';
import { ExecService } from '../services/exec.ts';
import { ContainerStore } from '../metadata/containers.ts';
import { RuncRuntime } from '../runtime/containers.ts';
import { ContainerService } from '../services/containers.ts';
import { ContainerFsService } from '../services/container-fs.ts';
import { containerFsRoutes } from '../api/routes/container-fs.ts';
import { containerOpsRoutes } from '../api/routes/container-ops.ts';
import { ContainerOps } from '../services/container-ops.ts';
import { HealthMonitor } from '../services/health.ts';
import { fileURLToPath } from 'node:url';
import { volumeRoutes } from '../api/routes/volumes.ts';
import type { MountRequest } from '../runtime/spec.ts';
import { VolumeService } from '../services/volumes.ts';
import { VolumeStore } from '../volumes/store.ts';
import { NetworkStore } from '../network/store.ts';
import { type NetworkOptions, NetworkService } from '../services/networks.ts';
import { networkRoutes } from '../api/routes/networks.ts';
import { PullService } from '../services/pull.ts';
import { BuildCache } from '../builder/cache.ts';
import { parseReference } from '../images/reference.ts';
import { Builder } from '../builder/builder.ts';
import { BuildService } from '../services/builds.ts';
import { buildRoutes } from '../api/routes/build.ts';
import { cleanBuildLeftovers } from '../builder/recover.ts';
import { PushService } from '../services/push.ts';
import { distributionRoutes } from '../api/routes/distribution.ts';
import { type RegistryClientFactory, registryClientFactory } from '../distribution/client.ts';

export const VERSION = '0.1.0';

export interface DaemonOptions {
  dataRoot: string;
  socket: string;
  log: Logger;
  network?: NetworkOptions;
  /** `--insecure-registry` and `--registry-mirror`. */
  registry?: { insecure?: string[]; mirrors?: string[] };
}

export interface RunningDaemon {
  close(): Promise<void>;
}

/** Composes the stores and services, recovers from any crash, and serves the API. */
export async function startDaemon(opts: DaemonOptions): Promise<RunningDaemon> {
  const { dataRoot, socket, log } = opts;
  await mkdir(dataRoot, { recursive: true, mode: 0o711 });
  const releasePid = await acquirePidfile(join(dataRoot, 'berthd.pid'));
  try {
    const db = openDatabase(join(dataRoot, 'berth.db'));
    const content = new ContentStore(join(dataRoot, 'content'));
    await content.init();
    const snapshots = new OverlaySnapshotter(join(dataRoot, 'snapshots'), db);
    await snapshots.init();
    const leases = new LeaseManager();
    const images = new ImageStore(db, content);
    const buildCache = new BuildCache(db);
    const events = new EventBus();
    // Extractions a crash interrupted are discarded; they are redone when needed.
    for (const s of snapshots.list()) if (s.key.startsWith('extract-')) await snapshots.remove(s.key).catch(() => {});
    await cleanBuildLeftovers({ snapshots, scratch: join(dataRoot, 'tmp'), runcRoot: join(dataRoot, 'runc'), log });
    await snapshots.removeOrphanDirs();
    const gc = new GarbageCollector({
      content, snapshots, leases, log: log.child({ module: 'gc' }),
      roots: [{
        blobs: () => images.referencedBlobs(),
        snapshots: () => images.layerChains().map((c) => chainIds(c).at(-1)!).filter(Boolean),
      }, {
        // A container's own snapshot is the key of its writable layer.
        blobs: () => [],
        snapshots: () => containerStore.list().map((c) => c.id),
      }, {
        blobs: () => buildCache.blobs(),
        snapshots: () => buildCache.snapshots(),
      }],
    });
    const unpacker = new Unpacker({ content, snapshots, leases });
    const imageService = new ImageService({ store: images, content, unpacker, leases, gc, events, log: log.child({ module: 'images' }) });
    const daemonId = await daemonIdentity(join(dataRoot, 'engine-id'));
    const containerStore = new ContainerStore(db);
    const volumeStore = new VolumeStore(db, join(dataRoot, 'volumes'));
    await volumeStore.init();
    const volumes = new VolumeService({
      store: volumeStore, events, log: log.child({ module: 'volumes' }), running: (id) => containerStore.get(id)?.state.Running ?? false,
      resolveContainer: (idOrName) => containerStore.resolve(idOrName).id,
    });
    const runtime = new RuncRuntime({
      dataRoot, snapshots, log: log.child({ module: 'runtime' }),
      unpack: (imageId) => imageService.unpack(imageId),
      monitorBin: fileURLToPath(new URL('../../monitor/berth-monitor', import.meta.url)),
      initBin: '/usr/bin/tini-static',
      volumeMounts: (c, rootfs) => volumes.mountsFor(c.id, rootfs, c) as Promise<MountRequest[]>,
      releaseMounts: (c) => volumes.releaseContainer(c.id),
      populateVolumes: { wanted: (c) => volumes.wantsPopulate(c.id), fill: (c, rootfs) => volumes.populate(c.id, rootfs) },
    });
    const networks = new NetworkService({
      store: new NetworkStore(db), containers: containerStore, events, log: log.child({ module: 'network' }),
      options: opts.network ?? { bridge: 'berth0' },
    });
    await networks.init();
    const containers = new ContainerService({ store: containerStore, images: imageService, runtime, events, log: log.child({ module: 'containers' }), volumes, networks });
    const containerFs = new ContainerFsService({
      containers, images: imageService, snapshots, events, log: log.child({ module: 'container-fs' }),
      rootfsPath: (c) => join(runtime.dir(c), 'rootfs'), scratch: join(dataRoot, 'tmp'), mountsOf: (c) => volumes.mountsJson(c.id),
    });
    await containerFs.recover();
    const execs = new ExecService({
      backend: { resolve: (idOrName) => containers.resolve(idOrName), execHost: (c, execId) => runtime.execHost(c, execId) },
      events, log: log.child({ module: 'exec' }),
    });
    const ops = new ContainerOps({ store: containerStore, runtime, events, log: log.child({ module: 'container-ops' }) });
    const health = new HealthMonitor({ store: containerStore, runtime, events, log: log.child({ module: 'health' }) });
    health.listen();

    // Registry access for pull, push, login and search. Credentials arrive per request in
    // X-Registry-Auth, so a route makes one client per request:
    //   registries(decodeRegistryAuth(ctx.req.headers['x-registry-auth'] as string), ctx.signal)
    // (decodeRegistryAuth is in distribution/credentials.ts). Clients share keep-alive connections.
    const registries: RegistryClientFactory = registryClientFactory(opts.registry ?? {});
    const pull = new PullService({
      images, content, snapshots, unpacker, leases, gc, events, log: log.child({ module: 'pull' }), registry: registries,
    });
    const push = new PushService({ images, content, events, log: log.child({ module: 'push' }), registry: registries });
    const builds: BuildService = new BuildService({
      builder: new Builder({
        content, snapshots, unpacker, leases, cache: buildCache, runc: { binary: 'runc', root: join(dataRoot, 'runc') },
        scratch: join(dataRoot, 'tmp'), log: log.child({ module: 'builder' }),
        baseImage: (name, platform, pullIt, signal) => builds.baseImage(name, platform, pullIt, signal),
      }),
      images: imageService, cache: buildCache, leases, gc, scratch: join(dataRoot, 'tmp'), events, log: log.child({ module: 'build' }),
    });
    builds.pull = async (name, platform, signal) => {
      await pull.pull(parseReference(name), { platform, signal });
    };

    const routes = [
      ...systemRoutes({
        events, dataRoot, daemonId, version: VERSION,
        counts: () => {
          const all = containerStore.list();
          const running = all.filter((c) => c.state.Running && !c.state.Paused).length;
          const paused = all.filter((c) => c.state.Paused).length;
          return { images: images.count(), containers: all.length, running, paused, stopped: all.length - running - paused };
        },
        diskUsage: async (types) => {
          const du = types.has('image') ? imageService.diskUsage() : { layersSize: 0, images: [] };
          return {
            LayersSize: du.layersSize,
            Images: types.has('image') ? du.images.map((i) => imageSummary(i.view, 1050, i.containers)) : null,
            Containers: types.has('container')
              ? await Promise.all(containerStore.list().map(async (c) => ({
                ...containerSummary(c, volumes.mountsJson(c.id), networks.summary(c)), ...(await containerFs.sizes(c)),
              })))
              : null,
            Volumes: types.has('volume') ? await volumes.diskUsage() : null,
            BuildCache: types.has('build-cache') ? builds.records() : null,
          };
        },
      }),
      ...imageRoutes({
        images: imageService,
        graphDriverData: (id) => graphData(snapshots, images.layers(id).map((l) => l.diffId)),
        pull, push,
      }),
      ...containerRoutes(containers, { networks, sizes: (c) => containerFs.sizes(c), execIds: (c) => execs.idsOf(c.id) }),
      ...networkRoutes(networks),
      ...containerFsRoutes(containerFs),
      ...execRoutes(execs),
      ...containerOpsRoutes(ops),
      ...volumeRoutes(volumes),
      ...buildRoutes(builds),
      ...distributionRoutes({ registries }),
    ];
    const server = createApiServer(routes, log.child({ module: 'api' }));
    await listenUnix(server, socket);
    log.info('berthd started', { dataRoot, socket, pid: process.pid, version: VERSION });
    gc.collect().catch((e) => log.error('start-up gc failed', { err: e }));
    await containers.reconcile().catch((e) => log.error('reconciling containers failed', { err: e }));
    for (const c of containerStore.list()) health.resume(c);

    const conns = new Set<NetSocket>();
    server.on('connection', (c: NetSocket) => {
      conns.add(c);
      c.on('close', () => conns.delete(c));
    });
    return {
      async close() {
        health.close();
        await builds.close();
        await networks.close();
        await new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const c of conns) c.destroy();
        });
        await unlink(socket).catch(() => {});
        db.close();
        await releasePid();
        log.info('berthd stopped');
      },
    };
  } catch (e) {
    await releasePid();
    throw e;
  }
}

function graphData(snapshots: OverlaySnapshotter, diffIds: Digest[]): Record<string, string> {
  const chain = chainIds(diffIds);
  const dirs = chain.map((c) => snapshots.stat(c)).filter((s) => s !== undefined).map((s) => join(snapshots.dir(s), 'fs'));
  if (dirs.length !== chain.length || dirs.length === 0) return {};
  const [upper, ...lower] = dirs.reverse();
  return lower.length ? { LowerDir: lower.join(':'), UpperDir: upper } : { UpperDir: upper };
}

async function daemonIdentity(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (e) {
    if (errno(e) !== 'ENOENT') throw e;
    const id = randomUUID();
    await writeFileAtomic(path, id + '\n');
    return id;
  }
}

/** Listens on a unix socket, replacing a stale socket file but never a live daemon's. */
async function listenUnix(server: Server, path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o755 });
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
  if (live) throw failedPrecondition(`another daemon is already listening on ${path}`);
  await unlink(path).catch((e) => { if (errno(e) !== 'ENOENT') throw e; });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => { server.off('error', reject); resolve(); });
  });
  await chmod(path, 0o660);
}
