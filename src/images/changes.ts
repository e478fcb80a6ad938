import { invalidArgument } from '../common/errors.ts';
import type { ContainerConfig } from './oci.ts';

/** The Dockerfile instructions `docker import --change` and `commit --change` accept. */
const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'HEALTHCHECK', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** Applies `--change` lines (Dockerfile syntax) to a container config, returning a new config. */
export function applyChanges(base: ContainerConfig, changes: string[]): ContainerConfig {
  const cfg: ContainerConfig = structuredClone(base);
  for (const line of changes) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(trimmed)!;
    const word = m[1].toUpperCase();
    const rest = m[2].trim();
    if (!ALLOWED.has(word)) throw invalidArgument(`${m[1]} is not a valid change command`);
    switch (word) {
      case 'CMD': cfg.Cmd = commandForm(rest); break;
      case 'ENTRYPOINT': cfg.Entrypoint = commandForm(rest); break;
      case 'ENV': {
        const env = new Map((cfg.Env ?? []).map((e) => [e.split('=')[0], e] as const));
        for (const [k, v] of keyValues(rest, word)) env.set(k, `${k}=${v}`);
        cfg.Env = [...env.values()];
        break;
      }
      case 'LABEL':
        cfg.Labels = { ...cfg.Labels };
        for (const [k, v] of keyValues(rest, word)) cfg.Labels[k] = v;
        break;
      case 'EXPOSE':
        cfg.ExposedPorts = { ...cfg.ExposedPorts };
        for (const p of words(rest)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(p)) throw invalidArgument(`invalid containerPort: ${p}`);
          cfg.ExposedPorts[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        break;
      case 'VOLUME':
        cfg.Volumes = { ...cfg.Volumes };
        for (const v of rest.startsWith('[') ? jsonArray(rest, word) : words(rest)) cfg.Volumes[v] = {};
        break;
      case 'USER': cfg.User = rest; break;
      case 'WORKDIR': cfg.WorkingDir = rest; break;
      case 'STOPSIGNAL': cfg.StopSignal = rest; break;
      case 'ONBUILD': cfg.OnBuild = [...(cfg.OnBuild ?? []), rest]; break;
      case 'HEALTHCHECK': {
        if (/^NONE$/i.test(rest)) cfg.Healthcheck = { Test: ['NONE'] };
        else {
          const cm = /^CMD\s+([\s\S]+)$/i.exec(rest);
          if (!cm) throw invalidArgument('HEALTHCHECK change must be NONE or CMD …');
          const form = commandForm(cm[1]);
          cfg.Healthcheck = { Test: cm[1].trim().startsWith('[') ? ['CMD', ...form] : ['CMD-SHELL', cm[1].trim()] };
        }
        break;
      }
    }
  }
  return cfg;
}

/** JSON array form stays as it is; anything else runs through /bin/sh -c. */
function commandForm(rest: string): string[] {
  if (rest.startsWith('[')) {
    try {
      const v = JSON.parse(rest);
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
    } catch { /* falls back to shell form, as Docker does */ }
  }
  return ['/bin/sh', '-c', rest];
}

function jsonArray(rest: string, word: string): string[] {
  try {
    const v = JSON.parse(rest);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  } catch { /* below */ }
  throw invalidArgument(`${word} needs a JSON array of strings`);
}

/** Splits on white space, honouring quotes and backslash escapes. */
export function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = '';
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") { quote = c; inWord = true; }
    else if (c === '\\' && i + 1 < s.length) { cur += s[++i]; inWord = true; }
    else if (/\s/.test(c)) { if (inWord) out.push(cur); cur = ''; inWord = false; }
    else { cur += c; inWord = true; }
  }
  if (quote) throw invalidArgument(`unmatched quote in "${s}"`);
  if (inWord) out.push(cur);
  return out;
}

/** `k=v k2="v 2"`, or the legacy `KEY value with spaces`. */
function keyValues(rest: string, word: string): [string, string][] {
  const ws = words(rest);
  if (ws.length === 0) throw invalidArgument(`${word} requires at least one argument`);
  if (!ws[0].includes('=')) {
    const sp = /^(\S+)\s+([\s\S]*)$/.exec(rest);
    if (!sp) throw invalidArgument(`${word} requires a value for ${ws[0]}`);
    return [[sp[1], words(sp[2]).join(' ')]];
  }
  return ws.map((w) => {
    const i = w.indexOf('=');
    if (i <= 0) throw invalidArgument(`${word} names must be of the form key=value: ${w}`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}
