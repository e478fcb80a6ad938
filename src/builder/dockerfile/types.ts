// The typed form of a Dockerfile: what `instructions.ts` makes of the parser's AST and what the
// builder lowers into a build graph. Words are kept as written (unexpanded): variable
// substitution depends on build-time state (the base image's ENV, --build-arg values), so the
// builder expands them with `expand.ts` as it walks a stage, for the instructions Docker expands.

/** Where an instruction came from, for errors ("Dockerfile:3") and for image history. */
export interface Origin {
  /** First line of the instruction, 1-based. */
  line: number;
  /** Last line (continuations and heredocs included). */
  endLine: number;
  /** The instruction as written, continuations joined, e.g. `RUN apk add x`; heredoc bodies excluded. */
  original: string;
}

/** A here-document attached to RUN, COPY or ADD (`<<EOF`, `<<-EOF`, `<<"EOF"`). */
export interface Heredoc {
  /** The delimiter word, e.g. EOF. */
  name: string;
  /** The body, with leading tabs removed for `<<-`; ends with a newline when the source did. */
  content: string;
  /** False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no variable expansion in the body. */
  expand: boolean;
  /** True for `<<-EOF`. */
  chomp: boolean;
}

/** Parser directives at the top of the file. */
export interface Directives {
  syntax?: string;
  /** The escape character: `\` by default, or a backtick. */
  escape: '\\' | '`';
  check?: string;
}

export interface ArgDecl {
  name: string;
  /** Raw default value (expanded at use); undefined when declared without one. */
  value?: string;
}

/** `--mount=type=secret,id=x,target=/run/secrets/x,required=true` and friends on RUN. */
export interface RunMount {
  type: 'secret' | 'cache' | 'bind' | 'tmpfs' | 'ssh';
  /** Every key=value of the flag, as written (id, target/dst/destination, source/src, from, required, mode, uid, gid, readonly...). */
  options: Record<string, string>;
}

export type Command =
  | ({ kind: 'RUN'; /** Shell form: one string for the shell; exec form: argv. */ shell: boolean; args: string[]; heredocs: Heredoc[]; mounts: RunMount[]; network?: string; security?: string } & Origin)
  | ({ kind: 'CMD' | 'ENTRYPOINT'; shell: boolean; args: string[] } & Origin)
  | ({ kind: 'SHELL'; args: string[] } & Origin)
  | ({ kind: 'ENV'; pairs: [string, string][] } & Origin)
  | ({ kind: 'LABEL'; pairs: [string, string][] } & Origin)
  | ({ kind: 'ARG'; args: ArgDecl[] } & Origin)
  | ({ kind: 'WORKDIR' | 'USER' | 'STOPSIGNAL' | 'MAINTAINER'; value: string } & Origin)
  | ({ kind: 'EXPOSE'; ports: string[] } & Origin)
  | ({ kind: 'VOLUME'; paths: string[] } & Origin)
  | ({
      kind: 'COPY' | 'ADD';
      /** Sources as written (maybe wildcards, URLs for ADD, or heredoc names). */
      sources: string[];
      dest: string;
      from?: string;
      chown?: string;
      chmod?: string;
      link: boolean;
      /** ADD --keep-git-dir, --checksum; COPY --parents, --exclude: kept for completeness. */
      checksum?: string;
      exclude: string[];
      heredocs: Heredoc[];
      /** COPY --parents, ADD --keep-git-dir and ADD --unpack, when given. */
      parents?: boolean;
      keepGitDir?: boolean;
      unpack?: boolean;
    } & Origin)
  | ({
      kind: 'HEALTHCHECK';
      /** `NONE` disables the base image's check; otherwise Docker's Test array (["CMD", ...] or ["CMD-SHELL", "..."]). */
      test: string[];
      /** Durations in nanoseconds, 0 when not given (Docker's "inherit/default"). */
      interval: number;
      timeout: number;
      startPeriod: number;
      startInterval: number;
      retries: number;
    } & Origin)
  | ({ kind: 'ONBUILD'; /** The trigger instruction as written, e.g. `COPY . /app`. */ expression: string } & Origin);

export type CommandKind = Command['kind'];

export interface Stage {
  /** 0-based position among the stages. */
  index: number;
  /** The `AS` name, lower-cased; undefined without one. */
  name?: string;
  /** The FROM image as written (may hold ${ARG}s from the meta args), or `scratch`. */
  base: string;
  /** FROM --platform as written, e.g. `$BUILDPLATFORM` or `linux/arm64`. */
  platform?: string;
  from: Origin;
  commands: Command[];
}

export interface Dockerfile {
  directives: Directives;
  /** ARGs before the first FROM: usable in FROM lines, and re-declarable inside stages. */
  metaArgs: (ArgDecl & { origin: Origin })[];
  stages: Stage[];
}

/**
 * A syntax or meaning error with its place in the file. Rendered as Docker does:
 * `dockerfile parse error on line 3: unknown instruction: FOO`.
 */
export class DockerfileError extends Error {
  readonly line: number;
  constructor(line: number, message: string) {
    super(line > 0 ? `dockerfile parse error on line ${line}: ${message}` : message);
    this.name = 'DockerfileError';
    this.line = line;
  }
}
