import type { DockerHostConfig } from '../metadata/containers.ts';
import type { ResourceOptions } from './spec.ts';

/** HostConfig's resource fields (Docker's names) as the spec builder's options; zero and null mean unset. */
export function hostConfigResources(hc: DockerHostConfig): ResourceOptions {
  const n = (v: unknown) => (typeof v === 'number' && v !== 0 ? v : undefined);
  return {
    memory: n(hc.Memory), memorySwap: n(hc.MemorySwap), memoryReservation: n(hc.MemoryReservation),
    nanoCpus: n(hc.NanoCpus), cpuShares: n(hc.CpuShares), cpusetCpus: hc.CpusetCpus || undefined, cpusetMems: hc.CpusetMems || undefined,
    pidsLimit: typeof hc.PidsLimit === 'number' ? hc.PidsLimit : undefined, cpuQuota: n(hc.CpuQuota), cpuPeriod: n(hc.CpuPeriod),
    blkioWeight: n(hc.BlkioWeight),
  };
}
