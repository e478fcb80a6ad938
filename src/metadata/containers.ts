import { randomBytes } from 'node:crypto';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { conflict, invalidArgument, notFound } from '../common/errors.ts';
import { transaction } from './db.ts';

/** Docker's container State, as `inspect` shows it. */
export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: 'starting' | 'healthy' | 'unhealthy' | 'none'; FailingStreak: number; Log: { Start: string; End: string; ExitCode: number; Output: string }[] };
}

export const ZERO_TIME = '0001-01-01T00:00:00Z';

export function initialState(): ContainerState {
  return {
    Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
    Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
  };
}

/** The container's Config and HostConfig are kept as Docker's JSON, which is what create sends and inspect shows. */
export type DockerConfig = Record<string, any>;
export type DockerHostConfig = Record<string, any>;

export interface ContainerRecord {
  id: string;
  shortId: string;
  name: string;
  image: string;
  imageId: string;
  created: string;
  config: DockerConfig;
  hostConfig: DockerHostConfig;
  state: ContainerState;
  restartCount: number;
}

interface Row {
  id: string; short_id: string; name: string; image: string; image_id: string; created: string;
  config: string; host_config: string; state: string; restart_count: number;
}

const toRecord = (r: Row): ContainerRecord => ({
  id: r.id, shortId: r.short_id, name: r.name, image: r.image, imageId: r.image_id, created: r.created,
  config: JSON.parse(r.config), hostConfig: JSON.parse(r.host_config), state: JSON.parse(r.state), restartCount: r.restart_count,
});

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Container records. Every change of state is written through, so a daemon restart finds each container as it was. */
export class ContainerStore {
  #db: DatabaseSync;
  #q: Record<string, StatementSync>;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#q = {
      get: db.prepare('SELECT * FROM containers WHERE id = ?'),
      byName: db.prepare('SELECT * FROM containers WHERE name = ?'),
      byPrefix: db.prepare('SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2'),
      list: db.prepare('SELECT * FROM containers ORDER BY created DESC, id'),
      insert: db.prepare(`INSERT INTO containers (id, short_id, name, image, image_id, created, config, host_config, state, restart_count, labels)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`),
      setState: db.prepare('UPDATE containers SET state = ? WHERE id = ?'),
      setRestarts: db.prepare('UPDATE containers SET restart_count = ? WHERE id = ?'),
      setHostConfig: db.prepare('UPDATE containers SET host_config = ? WHERE id = ?'),
      rename: db.prepare('UPDATE containers SET name = ?, config = ? WHERE id = ?'),
      delete: db.prepare('DELETE FROM containers WHERE id = ?'),
      usingImage: db.prepare('SELECT * FROM containers WHERE image_id = ?'),
      shortTaken: db.prepare('SELECT 1 FROM containers WHERE short_id = ?'),
      count: db.prepare('SELECT state FROM containers'),
    };
  }

  list(): ContainerRecord[] {
    return (this.#q.list.all() as unknown as Row[]).map(toRecord);
  }

  get(id: string): ContainerRecord | undefined {
    const r = this.#q.get.get(id) as Row | undefined;
    return r && toRecord(r);
  }

  usingImage(imageId: string): ContainerRecord[] {
    return (this.#q.usingImage.all(imageId) as unknown as Row[]).map(toRecord);
  }

  /** Docker's lookup: full ID, then exact name (with or without '/'), then a unique ID prefix. */
  resolve(idOrName: string): ContainerRecord {
    const key = idOrName.replace(/^\//, '');
    if (!key) throw invalidArgument('container name or ID must not be empty');
    const exact = (this.#q.get.get(key) ?? this.#q.byName.get(key)) as Row | undefined;
    if (exact) return toRecord(exact);
    if (/^[a-f0-9]+$/.test(key)) {
      const rows = this.#q.byPrefix.all(key, key + 'g') as unknown as Row[];
      if (rows.length > 1) throw invalidArgument(`multiple IDs found with provided prefix: ${key}`);
      if (rows.length === 1) return toRecord(rows[0]);
    }
    throw notFound(`No such container: ${idOrName}`);
  }

  /** Records a new container; a taken name is Docker's 409. */
  create(c: Omit<ContainerRecord, 'id' | 'shortId' | 'restartCount' | 'name'> & { name?: string }): ContainerRecord {
    return transaction(this.#db, () => {
      let id: string;
      do id = randomBytes(32).toString('hex');
      while (this.#q.shortTaken.get(id.slice(0, 12)));
      const name = c.name ? validName(c.name) : this.#freeName();
      // Docker's default hostname is the short ID.
      const config: DockerConfig = { ...c.config, Hostname: c.config.Hostname || id.slice(0, 12) };
      const taken = this.#q.byName.get(name) as Row | undefined;
      if (taken) {
        throw conflict(`Conflict. The container name "/${name}" is already in use by container "${taken.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
      this.#q.insert.run(id, id.slice(0, 12), name, c.image, c.imageId, c.created, JSON.stringify(config), JSON.stringify(c.hostConfig),
        JSON.stringify(c.state), JSON.stringify(config.Labels ?? {}));
      return this.get(id)!;
    });
  }

  setState(id: string, state: ContainerState): void {
    this.#q.setState.run(JSON.stringify(state), id);
  }

  setRestartCount(id: string, n: number): void {
    this.#q.setRestarts.run(n, id);
  }

  setHostConfig(id: string, hc: DockerHostConfig): void {
    this.#q.setHostConfig.run(JSON.stringify(hc), id);
  }

  rename(id: string, newName: string): void {
    transaction(this.#db, () => {
      const name = validName(newName);
      const taken = this.#q.byName.get(name) as Row | undefined;
      if (taken && taken.id !== id) throw conflict(`Error when allocating new name: Conflict. The container name "/${name}" is already in use by container "${taken.id}". You have to remove (or rename) that container to be able to reuse that name.`);
      const rec = this.get(id);
      if (!rec) throw notFound(`No such container: ${id}`);
      this.#q.rename.run(name, JSON.stringify(rec.config), id);
    });
  }

  delete(id: string): void {
    this.#q.delete.run(id);
  }

  #freeName(): string {
    for (;;) {
      const n = randomName();
      if (!this.#q.byName.get(n)) return n;
    }
  }
}

function validName(name: string): string {
  const n = name.replace(/^\//, '');
  if (!NAME_RE.test(n)) throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return n;
}

const ADJECTIVES = ['brave', 'calm', 'clever', 'eager', 'fair', 'gentle', 'happy', 'jolly', 'keen', 'kind', 'lively', 'lucid', 'merry', 'nimble', 'proud',
  'quiet', 'quick', 'sharp', 'steady', 'swift', 'tidy', 'vivid', 'warm', 'wise', 'zesty', 'bold', 'bright', 'crisp', 'deft', 'fond'];
const NAMES = ['ada', 'babbage', 'cerf', 'dijkstra', 'engelbart', 'floyd', 'goldberg', 'hamilton', 'hopper', 'knuth', 'lamport', 'liskov', 'lovelace',
  'mccarthy', 'milner', 'noether', 'pike', 'ritchie', 'shannon', 'thompson', 'torvalds', 'turing', 'wirth', 'yonath', 'zuse', 'allen', 'backus',
  'curie', 'hoare', 'kay'];

/** A Docker-style `adjective_name` for unnamed containers. */
export function randomName(): string {
  const pick = (a: string[]) => a[randomBytes(1)[0] % a.length];
  return `${pick(ADJECTIVES)}_${pick(NAMES)}${randomBytes(1)[0] % 4 === 0 ? randomBytes(1)[0] % 10 : ''}`;
}
