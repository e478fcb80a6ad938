/**
 * Seccomp: berth's default profile as data, and its materialisation into the
 * OCI `linux.seccomp` object for one container.
 *
 * The profile is Docker-compatible: everything not listed fails with EPERM; a
 * long list of ordinary syscalls is allowed; some are allowed only with
 * particular arguments; and some only when the container holds a capability
 * (mount, unshare and setns with CAP_SYS_ADMIN, ptrace with CAP_SYS_PTRACE, …),
 * so adding a capability also opens the syscalls that go with it. Rules can be
 * limited to architectures and to a minimum kernel version. Names a given
 * libseccomp does not know are skipped by runc, so the list may run ahead of
 * the host.
 */
import { release } from 'node:os';
import { invalidArgument } from '../common/errors.ts';

export type SeccompAction =
  | 'SCMP_ACT_KILL'
  | 'SCMP_ACT_KILL_PROCESS'
  | 'SCMP_ACT_KILL_THREAD'
  | 'SCMP_ACT_TRAP'
  | 'SCMP_ACT_ERRNO'
  | 'SCMP_ACT_TRACE'
  | 'SCMP_ACT_ALLOW'
  | 'SCMP_ACT_LOG'
  | 'SCMP_ACT_NOTIFY';

export type SeccompOperator =
  | 'SCMP_CMP_NE'
  | 'SCMP_CMP_LT'
  | 'SCMP_CMP_LE'
  | 'SCMP_CMP_EQ'
  | 'SCMP_CMP_GE'
  | 'SCMP_CMP_GT'
  | 'SCMP_CMP_MASKED_EQ';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: SeccompOperator;
}

/** The OCI runtime-spec `linux.seccomp` object. */
export interface OciSeccomp {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSyscall[];
}

export interface OciSyscall {
  names: string[];
  action: SeccompAction;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** When a rule applies: all listed capabilities held, the architecture listed, the kernel at least this version. */
export interface RuleCondition {
  caps?: readonly string[];
  arches?: readonly string[];
  minKernel?: string;
}

export interface ProfileRule {
  names: readonly string[];
  /** Allow unless stated. */
  action?: SeccompAction;
  errnoRet?: number;
  /** All must match (they are ANDed). */
  args?: readonly SeccompArg[];
  /** The rule applies only if every part of this holds. */
  includes?: RuleCondition;
  /** The rule is dropped if any capability or architecture here matches. */
  excludes?: RuleCondition;
}

export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  /** Go architecture name → the libseccomp architectures a filter for it covers (native first). */
  archMap: Readonly<Record<string, readonly string[]>>;
  rules: readonly ProfileRule[];
}

const EPERM = 1;
const ENOSYS = 38;

/** Arguments to clone(2) that would create a namespace (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET). */
const CLONE_NAMESPACE_FLAGS = 0x7e020000;

/** Syscalls any container may make. */
const ALWAYS_ALLOWED: readonly string[] = [
    'accept', 'accept4', 'access', 'adjtimex', 'alarm', 'bind', 'brk', 'cachestat', 'capget', 'capset', 'chdir',
    'chmod', 'chown', 'chown32', 'clock_adjtime', 'clock_adjtime64', 'clock_getres', 'clock_getres_time64',
    'clock_gettime', 'clock_gettime64', 'clock_nanosleep', 'clock_nanosleep_time64', 'close', 'close_range',
    'connect', 'copy_file_range', 'creat', 'dup', 'dup2', 'dup3', 'epoll_create', 'epoll_create1', 'epoll_ctl',
    'epoll_ctl_old', 'epoll_pwait', 'epoll_pwait2', 'epoll_wait', 'epoll_wait_old', 'eventfd', 'eventfd2', 'execve',
    'execveat', 'exit', 'exit_group', 'faccessat', 'faccessat2', 'fadvise64', 'fadvise64_64', 'fallocate',
    'fanotify_mark', 'fchdir', 'fchmod', 'fchmodat', 'fchmodat2', 'fchown', 'fchown32', 'fchownat', 'fcntl',
    'fcntl64', 'fdatasync', 'fgetxattr', 'flistxattr', 'flock', 'fork', 'fremovexattr', 'fsetxattr', 'fstat',
    'fstat64', 'fstatat64', 'fstatfs', 'fstatfs64', 'fsync', 'ftruncate', 'ftruncate64', 'futex', 'futex_requeue',
    'futex_time64', 'futex_wait', 'futex_waitv', 'futex_wake', 'futimesat', 'getcpu', 'getcwd', 'getdents',
    'getdents64', 'getegid', 'getegid32', 'geteuid', 'geteuid32', 'getgid', 'getgid32', 'getgroups', 'getgroups32',
    'getitimer', 'getpeername', 'getpgid', 'getpgrp', 'getpid', 'getppid', 'getpriority', 'getrandom', 'getresgid',
    'getresgid32', 'getresuid', 'getresuid32', 'getrlimit', 'get_robust_list', 'getrusage', 'getsid', 'getsockname',
    'getsockopt', 'get_thread_area', 'gettid', 'gettimeofday', 'getuid', 'getuid32', 'getxattr', 'getxattrat',
    'inotify_add_watch', 'inotify_init', 'inotify_init1', 'inotify_rm_watch', 'io_cancel', 'ioctl', 'io_destroy',
    'io_getevents', 'io_pgetevents', 'io_pgetevents_time64', 'ioprio_get', 'ioprio_set', 'io_setup', 'io_submit',
    'ipc', 'kill', 'landlock_add_rule', 'landlock_create_ruleset', 'landlock_restrict_self', 'lchown', 'lchown32',
    'lgetxattr', 'link', 'linkat', 'listen', 'listmount', 'listxattr', 'listxattrat', 'llistxattr', '_llseek',
    'lremovexattr', 'lseek', 'lsetxattr', 'lstat', 'lstat64', 'madvise', 'map_shadow_stack', 'membarrier',
    'memfd_create', 'memfd_secret', 'mincore', 'mkdir', 'mkdirat', 'mknod', 'mknodat', 'mlock', 'mlock2', 'mlockall',
    'mmap', 'mmap2', 'mprotect', 'mq_getsetattr', 'mq_notify', 'mq_open', 'mq_timedreceive', 'mq_timedreceive_time64',
    'mq_timedsend', 'mq_timedsend_time64', 'mq_unlink', 'mremap', 'mseal', 'msgctl', 'msgget', 'msgrcv', 'msgsnd',
    'msync', 'munlock', 'munlockall', 'munmap', 'name_to_handle_at', 'nanosleep', 'newfstatat', '_newselect', 'open',
    'openat', 'openat2', 'pause', 'pidfd_open', 'pidfd_send_signal', 'pipe', 'pipe2', 'pkey_alloc', 'pkey_free',
    'pkey_mprotect', 'poll', 'ppoll', 'ppoll_time64', 'prctl', 'pread64', 'preadv', 'preadv2', 'prlimit64',
    'process_mrelease', 'pselect6', 'pselect6_time64', 'pwrite64', 'pwritev', 'pwritev2', 'read', 'readahead',
    'readlink', 'readlinkat', 'readv', 'recv', 'recvfrom', 'recvmmsg', 'recvmmsg_time64', 'recvmsg',
    'remap_file_pages', 'removexattr', 'removexattrat', 'rename', 'renameat', 'renameat2', 'restart_syscall',
    'riscv_hwprobe', 'rmdir', 'rseq', 'rt_sigaction', 'rt_sigpending', 'rt_sigprocmask', 'rt_sigqueueinfo',
    'rt_sigreturn', 'rt_sigsuspend', 'rt_sigtimedwait', 'rt_sigtimedwait_time64', 'rt_tgsigqueueinfo',
    'sched_getaffinity', 'sched_getattr', 'sched_getparam', 'sched_get_priority_max', 'sched_get_priority_min',
    'sched_getscheduler', 'sched_rr_get_interval', 'sched_rr_get_interval_time64', 'sched_setaffinity',
    'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'sched_yield', 'seccomp', 'select', 'semctl', 'semget',
    'semop', 'semtimedop', 'semtimedop_time64', 'send', 'sendfile', 'sendfile64', 'sendmmsg', 'sendmsg', 'sendto',
    'setfsgid', 'setfsgid32', 'setfsuid', 'setfsuid32', 'setgid', 'setgid32', 'setgroups', 'setgroups32', 'setitimer',
    'setpgid', 'setpriority', 'setregid', 'setregid32', 'setresgid', 'setresgid32', 'setresuid', 'setresuid32',
    'setreuid', 'setreuid32', 'setrlimit', 'set_robust_list', 'setsid', 'setsockopt', 'set_thread_area',
    'set_tid_address', 'setuid', 'setuid32', 'setxattr', 'setxattrat', 'shmat', 'shmctl', 'shmdt', 'shmget',
    'shutdown', 'sigaltstack', 'signalfd', 'signalfd4', 'sigprocmask', 'sigreturn', 'socketcall', 'socketpair',
    'splice', 'stat', 'stat64', 'statfs', 'statfs64', 'statmount', 'statx', 'symlink', 'symlinkat', 'sync',
    'sync_file_range', 'syncfs', 'sysinfo', 'tee', 'tgkill', 'time', 'timer_create', 'timer_delete',
    'timer_getoverrun', 'timer_gettime', 'timer_gettime64', 'timer_settime', 'timer_settime64', 'timerfd_create',
    'timerfd_gettime', 'timerfd_gettime64', 'timerfd_settime', 'timerfd_settime64', 'times', 'tkill', 'truncate',
    'truncate64', 'ugetrlimit', 'umask', 'uname', 'unlink', 'unlinkat', 'uretprobe', 'utime', 'utimensat',
    'utimensat_time64', 'utimes', 'vfork', 'vmsplice', 'wait4', 'waitid', 'waitpid', 'write', 'writev'
];

/** personality(2) personas allowed: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and the query 0xffffffff. */
const PERSONAS = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];

/** socket(2) for every address family except AF_ALG (38) and AF_VSOCK (40). */
const AF_ALG = 38;
const AF_VSOCK = 40;

const allowWithCap = (cap: string, names: readonly string[]): ProfileRule => ({ names, includes: { caps: [cap] } });
const allowOnArch = (arches: readonly string[], names: readonly string[]): ProfileRule => ({ names, includes: { arches } });

/** berth's default seccomp profile (Docker-compatible semantics). */
export const DEFAULT_PROFILE: SeccompProfile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  defaultErrnoRet: EPERM,
  archMap: {
    amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
    arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
    mips64: ['SCMP_ARCH_MIPS64', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64N32'],
    mips64n32: ['SCMP_ARCH_MIPS64N32', 'SCMP_ARCH_MIPS', 'SCMP_ARCH_MIPS64'],
    mipsel64: ['SCMP_ARCH_MIPSEL64', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64N32'],
    mipsel64n32: ['SCMP_ARCH_MIPSEL64N32', 'SCMP_ARCH_MIPSEL', 'SCMP_ARCH_MIPSEL64'],
    s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
    riscv64: ['SCMP_ARCH_RISCV64'],
    loong64: ['SCMP_ARCH_LOONGARCH64'],
  },
  rules: [
    { names: ALWAYS_ALLOWED },
    // Since 4.8 seccomp runs after ptrace, so ptrace can no longer bypass the filter.
    { names: ['process_vm_readv', 'process_vm_writev', 'ptrace'], includes: { minKernel: '4.8' } },
    { names: ['socket'], args: [{ index: 0, value: AF_ALG, op: 'SCMP_CMP_LT' }] },
    { names: ['socket'], args: [{ index: 0, value: AF_ALG + 1, op: 'SCMP_CMP_EQ' }] },
    { names: ['socket'], args: [{ index: 0, value: AF_VSOCK, op: 'SCMP_CMP_GT' }] },
    ...PERSONAS.map((p): ProfileRule => ({ names: ['personality'], args: [{ index: 0, value: p, op: 'SCMP_CMP_EQ' }] })),
    allowOnArch(['ppc64le'], ['sync_file_range2', 'swapcontext']),
    allowOnArch(['arm', 'arm64'], ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls']),
    allowOnArch(['amd64', 'x32'], ['arch_prctl']),
    allowOnArch(['amd64', 'x32', 'x86'], ['modify_ldt']),
    allowOnArch(['s390', 's390x'], ['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr']),
    allowOnArch(['riscv64'], ['riscv_flush_icache']),
    allowWithCap('CAP_DAC_READ_SEARCH', ['open_by_handle_at']),
    allowWithCap('CAP_SYS_ADMIN', [
      'bpf', 'clone', 'clone3', 'fanotify_init', 'fsconfig', 'fsmount', 'fsopen', 'fspick', 'lookup_dcookie',
      'lsm_get_self_attr', 'lsm_list_modules', 'lsm_set_self_attr', 'mount', 'mount_setattr', 'move_mount', 'open_tree',
      'perf_event_open', 'quotactl', 'quotactl_fd', 'setdomainname', 'sethostname', 'setns', 'syslog', 'umount',
      'umount2', 'unshare',
    ]),
    // Without CAP_SYS_ADMIN, clone may not create namespaces (s390 swaps the first two arguments)…
    {
      names: ['clone'],
      args: [{ index: 0, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      excludes: { caps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
    },
    {
      names: ['clone'],
      args: [{ index: 1, value: CLONE_NAMESPACE_FLAGS, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
      includes: { arches: ['s390', 's390x'] },
      excludes: { caps: ['CAP_SYS_ADMIN'] },
    },
    // …and clone3, whose flags live in memory a filter cannot read, answers ENOSYS so libcs fall back to clone.
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    allowWithCap('CAP_SYS_BOOT', ['reboot']),
    allowWithCap('CAP_SYS_CHROOT', ['chroot']),
    allowWithCap('CAP_SYS_MODULE', ['delete_module', 'init_module', 'finit_module']),
    allowWithCap('CAP_SYS_PACCT', ['acct']),
    allowWithCap('CAP_SYS_PTRACE', ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace']),
    allowWithCap('CAP_SYS_RAWIO', ['iopl', 'ioperm']),
    allowWithCap('CAP_SYS_TIME', ['settimeofday', 'stime', 'clock_settime', 'clock_settime64']),
    allowWithCap('CAP_SYS_TTY_CONFIG', ['vhangup']),
    allowWithCap('CAP_SYS_NICE', ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node']),
    allowWithCap('CAP_SYSLOG', ['syslog']),
    allowWithCap('CAP_BPF', ['bpf']),
    allowWithCap('CAP_PERFMON', ['perf_event_open']),
  ],
};

/** Node's and the kernel's names for an architecture → the Go name the profile uses. */
const ARCH_ALIASES: Readonly<Record<string, string>> = {
  x64: 'amd64',
  x86_64: 'amd64',
  amd64: 'amd64',
  arm64: 'arm64',
  aarch64: 'arm64',
  s390x: 's390x',
  riscv64: 'riscv64',
  loong64: 'loong64',
  mips64el: 'mipsel64',
  ppc64: 'ppc64',
  ppc64le: 'ppc64le',
};

export function goArch(arch: string): string {
  return ARCH_ALIASES[arch] ?? arch;
}

/** Compares dotted kernel versions numerically ("6.18.0-foo" ≥ "4.8"). */
export function kernelAtLeast(kernel: string, min: string): boolean {
  const parse = (v: string) => (/^(\d+)(?:\.(\d+))?(?:\.(\d+))?/.exec(v) ?? []).slice(1, 4).map((x) => Number(x ?? 0));
  const a = parse(kernel);
  const b = parse(min);
  if (a.length === 0 || b.length === 0) throw invalidArgument(`cannot compare kernel versions ${kernel} and ${min}`);
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return true;
}

/**
 * Materialises a profile for one container: keeps the rules whose conditions
 * hold for the capabilities it holds (its bounding set), the architecture and
 * the kernel, and lists the native and compatible architectures.
 */
export function materialiseProfile(
  profile: SeccompProfile,
  caps: readonly string[],
  arch: string,
  kernel: string = release(),
): OciSeccomp {
  const native = goArch(arch);
  const held = new Set(caps);
  const syscalls: OciSyscall[] = [];
  for (const rule of profile.rules) {
    const inc = rule.includes;
    if (inc?.caps && !inc.caps.every((c) => held.has(c))) continue;
    if (inc?.arches && !inc.arches.includes(native)) continue;
    if (inc?.minKernel && !kernelAtLeast(kernel, inc.minKernel)) continue;
    const exc = rule.excludes;
    if (exc?.caps && exc.caps.some((c) => held.has(c))) continue;
    if (exc?.arches && exc.arches.includes(native)) continue;
    const sc: OciSyscall = { names: [...rule.names], action: rule.action ?? 'SCMP_ACT_ALLOW' };
    if (rule.errnoRet !== undefined) sc.errnoRet = rule.errnoRet;
    if (rule.args) sc.args = rule.args.map((a) => ({ ...a }));
    syscalls.push(sc);
  }
  const out: OciSeccomp = { defaultAction: profile.defaultAction };
  if (profile.defaultErrnoRet !== undefined) out.defaultErrnoRet = profile.defaultErrnoRet;
  const arches = profile.archMap[native];
  if (arches) out.architectures = [...arches];
  out.syscalls = syscalls;
  return out;
}

/** libseccomp's native architecture names → Go's. */
const SCMP_TO_GO: Readonly<Record<string, string>> = {
  SCMP_ARCH_X86_64: 'amd64',
  SCMP_ARCH_X86: '386',
  SCMP_ARCH_X32: 'x32',
  SCMP_ARCH_AARCH64: 'arm64',
  SCMP_ARCH_ARM: 'arm',
  SCMP_ARCH_MIPS64: 'mips64',
  SCMP_ARCH_MIPS64N32: 'mips64n32',
  SCMP_ARCH_MIPSEL64: 'mipsel64',
  SCMP_ARCH_MIPSEL64N32: 'mipsel64n32',
  SCMP_ARCH_PPC64LE: 'ppc64le',
  SCMP_ARCH_S390X: 's390x',
  SCMP_ARCH_RISCV64: 'riscv64',
  SCMP_ARCH_LOONGARCH64: 'loong64',
};

interface DockerProfileJson {
  defaultAction?: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: { architecture: string; subArchitectures?: string[] | null }[] | null;
  syscalls?: {
    name?: string;
    names?: string[];
    action: SeccompAction;
    errnoRet?: number;
    args?: SeccompArg[] | null;
    includes?: RuleCondition;
    excludes?: RuleCondition;
  }[];
}

/**
 * Reads a profile in Docker's JSON format (what `--security-opt seccomp=FILE`
 * sends in HostConfig.SecurityOpt) into berth's form; `materialiseProfile`
 * then applies it to a container.
 */
export function parseDockerSeccomp(text: string): SeccompProfile {
  let raw: DockerProfileJson;
  try {
    raw = JSON.parse(text) as DockerProfileJson;
  } catch (e) {
    throw invalidArgument(`decoding seccomp profile failed: ${(e as Error).message}`, e);
  }
  if (!raw || typeof raw !== 'object' || !raw.defaultAction) throw invalidArgument('decoding seccomp profile failed: no defaultAction');
  if (raw.architectures?.length && raw.archMap?.length) {
    throw invalidArgument("'architectures' and 'archMap' were specified in the seccomp profile, use either 'architectures' or 'archMap'");
  }
  const archMap: Record<string, string[]> = {};
  for (const a of raw.archMap ?? []) {
    const go = SCMP_TO_GO[a.architecture];
    if (go) archMap[go] = [a.architecture, ...(a.subArchitectures ?? [])];
  }
  // A flat architecture list applies whatever the host.
  if (raw.architectures?.length) for (const go of new Set(Object.values(SCMP_TO_GO))) archMap[go] = [...raw.architectures];
  const rules: ProfileRule[] = (raw.syscalls ?? []).map((sc) => {
    const names = sc.names?.length ? sc.names : sc.name ? [sc.name] : [];
    if (!names.length) throw invalidArgument('decoding seccomp profile failed: a syscall rule has no names');
    const rule: ProfileRule = { names, action: sc.action };
    if (sc.errnoRet !== undefined) rule.errnoRet = sc.errnoRet;
    if (sc.args?.length) rule.args = sc.args;
    if (sc.includes && Object.keys(sc.includes).length) rule.includes = sc.includes;
    if (sc.excludes && Object.keys(sc.excludes).length) rule.excludes = sc.excludes;
    return rule;
  });
  const profile: SeccompProfile = { defaultAction: raw.defaultAction, archMap, rules };
  if (raw.defaultErrnoRet !== undefined) profile.defaultErrnoRet = raw.defaultErrnoRet;
  return profile;
}

/** berth's default profile for a container holding `caps` on `arch` (`x86_64`/`amd64`, `aarch64`/`arm64`, …). */
export function defaultSeccomp(caps: readonly string[], arch: string = process.arch, kernel: string = release()): OciSeccomp {
  return materialiseProfile(DEFAULT_PROFILE, caps, arch, kernel);
}
