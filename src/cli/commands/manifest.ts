import { type Command, CliError } from '../command.ts';

const pending = (name: string): Command => ({
  usage: `Usage:  berth manifest ${name}\n`,
  description: 'Manage image manifests and manifest lists',
  async run() {
    throw new CliError(`berth manifest ${name}: not yet available`);
  },
});

export const manifestInspect = pending('inspect');
export const manifestCreate = pending('create');
export const manifestAnnotate = pending('annotate');
export const manifestPush = pending('push');
export const manifestRm = pending('rm');
