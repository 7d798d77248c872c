// Types of swift-s3.mjs, for the TypeScript tests that import it.
export interface Swift {
  readonly endpoint: string;
  readonly region: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  /** The temporary directory holding the configuration, rings, data and logs. */
  readonly dir: string;
  readonly ports: Readonly<Record<string, number>>;
  /** Process group ids of the running servers. */
  pids(): number[];
  /** Starts the servers (again, after `stop`, on the same data); resolves to the milliseconds until they answered. */
  start(): Promise<number>;
  /**
   * Stops every server by process group (SIGTERM, then SIGKILL after 5 s; with `kill`, SIGKILL at
   * once, like a crash); the data stays.
   */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Stops and removes the directory (if this created it). */
  destroy(): Promise<void>;
  /** The last lines of each server's log. */
  logs(): string;
}
export function missingSwiftTools(): string[];
export function createSwift(options?: { dir?: string; readyTimeoutMs?: number }): Promise<Swift>;
export function startSwift(options?: {
  dir?: string;
  readyTimeoutMs?: number;
}): Promise<Swift & { readonly coldStartMs: number }>;
export function createBucket(endpoint: string, name: string): Promise<void>;
