import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FilesystemDriver } from './storage/filesystem.ts';
import { storageDriverSuite } from './storage/suite.ts';

storageDriverSuite('filesystem', async () => new FilesystemDriver(mkdtempSync(join(tmpdir(), 'berth-registry-fs-'))));
