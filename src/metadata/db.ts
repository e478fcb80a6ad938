import { DatabaseSync } from 'node:sqlite';

/**
 * The one metadata database: names, records, leases and snapshots, in WAL mode.
 * Schema changes are appended to MIGRATIONS, never edited: the index + 1 is the
 * schema version stored in `PRAGMA user_version`.
 */
const MIGRATIONS: readonly string[] = [
  // 1: images, references, layers, snapshots and leases
  `
  CREATE TABLE images (
    id TEXT PRIMARY KEY,                -- sha256 digest of the image config: Docker's image ID
    manifest TEXT NOT NULL,             -- digest of the manifest blob in the content store
    manifest_media_type TEXT NOT NULL,
    config_media_type TEXT NOT NULL,
    created TEXT NOT NULL,              -- RFC 3339 creation time from the config ('' if absent)
    size INTEGER NOT NULL,              -- uncompressed size of all layers
    platform TEXT NOT NULL,             -- os/arch[/variant]
    labels TEXT NOT NULL,               -- JSON object from config.config.Labels
    parent TEXT NOT NULL DEFAULT '',    -- local parent image ID (classic builder), else ''
    added_at INTEGER NOT NULL           -- ms since epoch, for stable ordering
  );
  CREATE TABLE image_refs (
    ref TEXT PRIMARY KEY,               -- fully normalised: docker.io/library/busybox:latest or repo@sha256:…
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('tag', 'digest')),
    created_at INTEGER NOT NULL
  );
  CREATE INDEX image_refs_by_image ON image_refs(image_id);
  CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    blob TEXT NOT NULL,                 -- digest of the layer blob as stored (maybe compressed)
    diff_id TEXT NOT NULL,              -- digest of the uncompressed tar
    size INTEGER NOT NULL,              -- blob size
    unpacked_size INTEGER NOT NULL,     -- uncompressed tar size, which Docker reports
    media_type TEXT NOT NULL,
    PRIMARY KEY (image_id, idx)
  );
  CREATE INDEX image_layers_by_blob ON image_layers(blob);
  CREATE TABLE snapshots (
    key TEXT PRIMARY KEY,               -- chain ID for committed layers, a caller key for active ones
    id INTEGER NOT NULL UNIQUE,         -- directory number under snapshots/
    parent TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL CHECK (kind IN ('committed', 'active', 'view')),
    size INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE leases (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE lease_resources (
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,                 -- 'blob' | 'snapshot'
    key TEXT NOT NULL,
    PRIMARY KEY (lease, kind, key)
  );
  `,
  // 2: containers
  `
  CREATE TABLE containers (
    id TEXT PRIMARY KEY,                -- 64 hex; its first 12 are unique too, so short IDs never clash
    short_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE,          -- without Docker's leading '/'
    image TEXT NOT NULL,                -- the image as the user named it
    image_id TEXT NOT NULL,
    created TEXT NOT NULL,              -- RFC 3339
    config TEXT NOT NULL,               -- JSON: Docker's container Config
    host_config TEXT NOT NULL,          -- JSON: Docker's HostConfig
    state TEXT NOT NULL,                -- JSON: Docker's State
    restart_count INTEGER NOT NULL DEFAULT 0,
    labels TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX containers_by_image ON containers(image_id);
  `,
  // 3: volumes, and each container's mount points (which make a volume in use)
  `
  CREATE TABLE volumes (
    name TEXT PRIMARY KEY,
    driver TEXT NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',  -- JSON object
    options TEXT NOT NULL DEFAULT '{}', -- JSON object: the driver's options (local: type, device, o)
    created TEXT NOT NULL               -- RFC 3339
  );
  CREATE TABLE volume_mounts (
    container_id TEXT NOT NULL,
    destination TEXT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('volume', 'bind')),
    name TEXT NOT NULL DEFAULT '',      -- the volume, for type 'volume'
    source TEXT NOT NULL DEFAULT '',    -- the host path, for type 'bind'
    mode TEXT NOT NULL DEFAULT '',
    rw INTEGER NOT NULL,
    propagation TEXT NOT NULL DEFAULT '',
    anonymous INTEGER NOT NULL DEFAULT 0, -- no source was named: rm -v removes it
    copy_data INTEGER NOT NULL DEFAULT 1, -- copy the image's files into an empty volume
    create_source INTEGER NOT NULL DEFAULT 0, -- a -v bind whose missing host path is made at start
    PRIMARY KEY (container_id, destination)
  );
  CREATE INDEX volume_mounts_by_name ON volume_mounts(name);
  `,
  // 4: networks, each container's endpoints on them (an address while it runs), and its published ports
  `
  CREATE TABLE networks (
    id TEXT PRIMARY KEY,                -- 64 hex
    name TEXT NOT NULL UNIQUE,
    driver TEXT NOT NULL,               -- 'bridge' | 'host' | 'null'
    created TEXT NOT NULL,              -- RFC 3339
    bridge TEXT NOT NULL DEFAULT '',    -- the host's bridge device (driver bridge)
    subnet TEXT NOT NULL DEFAULT '',    -- CIDR
    gateway TEXT NOT NULL DEFAULT '',
    ip_range TEXT NOT NULL DEFAULT '',  -- CIDR inside subnet that addresses come from; '' = the subnet
    internal INTEGER NOT NULL DEFAULT 0,
    attachable INTEGER NOT NULL DEFAULT 0,
    builtin INTEGER NOT NULL DEFAULT 0, -- bridge, host, none: made by the daemon, never removed
    labels TEXT NOT NULL DEFAULT '{}',
    options TEXT NOT NULL DEFAULT '{}'
  );
  CREATE TABLE endpoints (
    container_id TEXT NOT NULL,
    network_id TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '[]', -- JSON array, as asked at create or connect
    requested_ip TEXT NOT NULL DEFAULT '',
    endpoint_id TEXT NOT NULL DEFAULT '',
    ip TEXT,                            -- set while the container runs; unique per network, so never handed out twice
    mac TEXT NOT NULL DEFAULT '',
    ifname TEXT NOT NULL DEFAULT '',    -- inside the container (eth0, eth1, ...)
    host_ifname TEXT NOT NULL DEFAULT '',
    attached_at INTEGER NOT NULL DEFAULT 0, -- order of attachment: the first is the default route
    PRIMARY KEY (container_id, network_id),
    UNIQUE (network_id, ip)
  );
  CREATE INDEX endpoints_by_network ON endpoints(network_id);
  CREATE TABLE published_ports (
    container_id TEXT NOT NULL,
    proto TEXT NOT NULL,                -- tcp | udp | sctp
    container_port INTEGER NOT NULL,
    host_ip TEXT NOT NULL,              -- '0.0.0.0' for all
    host_port INTEGER NOT NULL,
    PRIMARY KEY (container_id, proto, container_port, host_ip, host_port),
    UNIQUE (proto, host_ip, host_port)
  );
  `,
  // 5: the builder's cache: each step's result, keyed by its content-addressed cache key
  `
  CREATE TABLE build_cache (
    key TEXT PRIMARY KEY,               -- sha256 of the step's canonical description and its parent's key
    kind TEXT NOT NULL,                 -- the instruction (FROM, RUN, COPY, ...)
    description TEXT NOT NULL,          -- for builder prune and system df
    state TEXT NOT NULL,                -- JSON: the image config and layers after the step
    layer TEXT NOT NULL DEFAULT '',     -- the blob of the layer this step made, '' for none
    size INTEGER NOT NULL DEFAULT 0,    -- that layer's size
    created_at INTEGER NOT NULL,        -- ms since epoch
    last_used INTEGER NOT NULL,
    usage_count INTEGER NOT NULL DEFAULT 1
  );
  `,
  // 6: a tag may name an image index (a multi-platform image): image_id is then the member for this
  // host (or the first), and the index blob lists every platform's manifest
  `
  ALTER TABLE image_refs ADD COLUMN index_digest TEXT NOT NULL DEFAULT '';
  CREATE INDEX images_by_manifest ON images(manifest);
  CREATE TABLE index_members (
    index_digest TEXT NOT NULL,         -- an index some tag names
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (index_digest, image_id)
  );
  `,
];

export type Db = DatabaseSync;

export function openDatabase(path: string): DatabaseSync {
  const db = new DatabaseSync(path);
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  db.exec('PRAGMA foreign_keys = ON');
  db.exec('PRAGMA busy_timeout = 5000');
  migrate(db);
  return db;
}

export function schemaVersion(db: DatabaseSync): number {
  return (db.prepare('PRAGMA user_version').get() as { user_version: number }).user_version;
}

function migrate(db: DatabaseSync): void {
  const current = schemaVersion(db);
  if (current > MIGRATIONS.length) {
    throw new Error(`database schema version ${current} is newer than this berthd understands (${MIGRATIONS.length})`);
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    transaction(db, () => {
      db.exec(MIGRATIONS[v]);
      db.exec(`PRAGMA user_version = ${v + 1}`);
    });
  }
}

/** Runs fn inside one transaction; nested calls join the outer one. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec('BEGIN IMMEDIATE');
  try {
    const out = fn();
    db.exec('COMMIT');
    return out;
  } catch (e) {
    db.exec('ROLLBACK');
    throw e;
  }
}
